"""``setup_logger`` with tf_al's signature, built on registered ``logging`` loggers."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


def setup_logger(
    debug: bool,
    name: str = "Runner",
    log_level: int = logging.DEBUG,
    default_log_level: int = logging.CRITICAL,
) -> logging.Logger:
    """Return the logger ``name``, printing to stdout at ``log_level`` when ``debug`` is set.

    Unlike tf_al (which built a fresh unregistered Logger on every call), this returns the same
    registered logger each time and adds its stdout handler only once.
    """
    logger = logging.getLogger(name)
    logger.setLevel(log_level if debug else default_log_level)
    if not any(getattr(h, "_al_experiments", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._al_experiments = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger
