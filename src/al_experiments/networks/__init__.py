"""Keras network builders, named from ``conf/model`` (``network._target_``).

Each builder takes the data's ``input_shape`` and ``num_classes`` (supplied when the job builds
it) plus its architecture settings, and returns an uncompiled ``keras.Model`` ending in softmax.
Dropout layers are plain Keras ``Dropout``; the MC-dropout wrapper switches them on at sampling.
"""

from __future__ import annotations

from typing import Sequence

from al_experiments.utils.quiet_tensorflow import import_tensorflow


def _keras():
    """Keras, imported after TensorFlow has loaded quietly (``import_tensorflow`` sets its log
    level first)."""
    import_tensorflow()
    import keras  # TensorFlow-heavy: loaded only when a network is built

    return keras


def _regularizer(weight_decay: float):
    keras = _keras()
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
    keras = _keras()

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
    keras = _keras()

    shape = _image_shape(input_shape, "cnn")
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


def batchbald_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: Sequence[int] = (32, 64),
    kernel_size: int = 5,
    dense_units: int = 128,
    dropout: float = 0.5,
):
    """Kirsch et al. (2019)'s MNIST network (their ``mnist_model.py``): per convolution, conv
    k x k -> spatial dropout (a whole feature map at a time, as ``Dropout2d``) -> max-pool 2x2
    -> ReLU; then dense -> dropout -> ReLU, and a dense softmax."""
    keras = _keras()

    shape = _image_shape(input_shape, "batchbald_cnn")
    layers = [keras.Input(shape)]
    if len(shape) == 2:
        layers.append(keras.layers.Reshape(shape + (1,)))
    for count in filters:
        layers += [keras.layers.Conv2D(int(count), kernel_size), keras.layers.SpatialDropout2D(dropout),
                   keras.layers.MaxPooling2D(2), keras.layers.Activation("relu")]
    layers += [keras.layers.Flatten(), keras.layers.Dense(dense_units), keras.layers.Dropout(dropout),
               keras.layers.Activation("relu"), keras.layers.Dense(num_classes, activation="softmax")]
    return keras.Sequential(layers, name="batchbald_cnn")


def _image_shape(input_shape: Sequence[int], name: str) -> tuple[int, ...]:
    """Gray images (H, W) or (H, W, C); flat feature vectors are refused (a convolution needs a
    spatial layout)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"The {name} network needs image inputs of shape (H, W) or (H, W, C), got {shape}; "
            "use model=mc_dropout_mlp for feature vectors."
        )
    return shape


__all__ = ["mlp", "cnn", "batchbald_cnn"]
