"""A network builder of one's own, named from conf/model/two_layer_mlp.yaml by ``_target_``.

al-experiments calls it with the data's ``input_shape`` and ``num_classes`` plus the settings
of the config; it returns an uncompiled Keras model ending in softmax.
"""

from __future__ import annotations


def two_layer_mlp(input_shape, num_classes: int, units: int = 64, dropout: float = 0.25):
    """Flatten -> two Dense(units) + Dropout blocks -> Dense softmax."""
    import keras

    return keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="two_layer_mlp",
    )
