"""Keras network builders, named from ``conf/model`` (``network._target_``).

Each builder takes the data's ``input_shape`` and ``num_classes`` (supplied when the job builds
it) plus its architecture settings, and returns an uncompiled ``keras.Model`` ending in softmax.
Dropout layers are plain Keras ``Dropout``; the MC-dropout wrapper switches them on at sampling.
"""

from __future__ import annotations

from typing import Sequence

from al_experiments.utils.tf_import import import_tensorflow


def _regularizer(weight_decay: float):
    import keras

    # L2 weight decay as in Gal et al.; None keeps the layer free of a regularisation loss.
    return keras.regularizers.L2(weight_decay) if weight_decay > 0 else None


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden_units: Sequence[int] = (128,),
    dropout: float = 0.5,
    weight_decay: float = 0.0,
    activation: str = "relu",
):
    """Flatten -> [Dense(units) -> Dropout(dropout)] per hidden layer -> Dense softmax."""
    import_tensorflow()
    import keras

    layers = [keras.Input(tuple(input_shape)), keras.layers.Flatten()]
    for units in hidden_units:
        layers.append(keras.layers.Dense(int(units), activation=activation,
                                         kernel_regularizer=_regularizer(weight_decay)))
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(num_classes, activation="softmax",
                                     kernel_regularizer=_regularizer(weight_decay)))
    return keras.Sequential(layers, name="mlp")


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: int = 32,
    kernel_size: int = 3,
    pool_size: int = 2,
    dense_units: int = 128,
    conv_dropout: float = 0.25,
    dense_dropout: float = 0.5,
    weight_decay: float = 0.0,
):
    """Gal et al. (2017): conv-conv-maxpool-dropout-dense-dropout-softmax.

    Gray images of shape (H, W) get a channel axis; flat feature vectors are rejected, since a
    convolution needs a spatial layout.
    """
    import_tensorflow()
    import keras

    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"The cnn network needs image inputs of shape (H, W) or (H, W, C), got {shape}; "
            "use model=mc_dropout_mlp for feature vectors."
        )
    reg = _regularizer(weight_decay)
    layers = [keras.Input(shape)]
    if len(shape) == 2:
        layers.append(keras.layers.Reshape(shape + (1,)))
    layers += [
        keras.layers.Conv2D(filters, kernel_size, activation="relu", kernel_regularizer=reg),
        keras.layers.Conv2D(filters, kernel_size, activation="relu", kernel_regularizer=reg),
        keras.layers.MaxPooling2D(pool_size),
        keras.layers.Dropout(conv_dropout),
        keras.layers.Flatten(),
        keras.layers.Dense(dense_units, activation="relu", kernel_regularizer=reg),
        keras.layers.Dropout(dense_dropout),
        keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg),
    ]
    return keras.Sequential(layers, name="cnn")


__all__ = ["mlp", "cnn"]
