"""Import TensorFlow quietly: its C++ INFO/WARNING banners are noise in every job log.

``TF_CPP_MIN_LOG_LEVEL`` only works if set before the import; a user's own value is kept.
"""

from __future__ import annotations

import os


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf
