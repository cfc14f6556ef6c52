"""TensorFlow helpers with tf_al's names. TensorFlow is imported only when needed."""

from __future__ import annotations

import os


def set_tf_log_level(level: str | int = "2") -> None:
    """Set ``TF_CPP_MIN_LOG_LEVEL`` (0 all, 1 no INFO, 2 no WARNING, 3 no ERROR).

    It takes effect for C++ messages only if set before TensorFlow is imported; this package
    imports TensorFlow lazily, so calling it first thing works.
    """
    level = str(level)
    if level not in {"0", "1", "2", "3"}:
        raise ValueError(f"TensorFlow log level must be one of 0, 1, 2, 3; got {level!r}.")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level


def disable_tf_logs() -> None:
    """Hide TensorFlow's INFO and WARNING messages."""
    set_tf_log_level("2")


def setup_growth() -> None:
    """Let TensorFlow grow GPU memory on demand instead of reserving all of it.

    Needed when several jobs share one GPU. Prints the device counts, as tf_al did.
    """
    import tensorflow as tf  # heavy: loaded only where GPU memory is set up

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            logical = tf.config.list_logical_devices("GPU")
            print(f"{len(gpus)} Physical GPU's, {len(logical)} Logical GPU's")
        except RuntimeError as err:  # growth must be set before the runtime starts
            print(err)
    else:
        cpus = tf.config.list_physical_devices("CPU")
        logical = tf.config.list_logical_devices("CPU")
        print(f"{len(cpus)} Physical CPU, {len(logical)} Logical CPU")
