"""Import TensorFlow quietly: its start-up banners are noise in every job's terminal and log.

``TF_CPP_MIN_LOG_LEVEL`` only works if set before the import (a user's own value is kept), and
some messages escape it (oneDNN, CUDA probing on a machine without a GPU), written by C++
straight to file descriptor 2. So the import and the device set-up run with descriptor 2
pointed at ``/dev/null``; ``AL_EXPERIMENTS_TF_LOGS=1`` keeps TensorFlow's messages. Errors are
unaffected: they reach Python as exceptions, raised after descriptor 2 is restored.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from collections.abc import Iterator

KEEP_LOGS_ENV = "AL_EXPERIMENTS_TF_LOGS"


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to silence (a detached process)
        yield
        return
    try:
        sys.stderr.flush()
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if os.environ.get(KEEP_LOGS_ENV, "").strip().lower() in ("1", "true", "yes"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        import tensorflow as tf  # what this module is for: TensorFlow, imported quietly

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced():
        import tensorflow as tf  # what this module is for: TensorFlow, imported quietly

        tf.config.list_physical_devices()  # CUDA probing (and its complaints) happens here, once
    return tf
