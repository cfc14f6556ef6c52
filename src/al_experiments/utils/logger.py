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


class JobLogFormatter(logging.Formatter):
    """``[14:03:12] round 3/10: ...`` for information, with the level named otherwise
    (``[14:03:12] WARNING: ...``), so a job's terminal reads as its results."""

    def __init__(self, datefmt: str = "%H:%M:%S") -> None:
        super().__init__(datefmt=datefmt)

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        text = f"[{self.formatTime(record, self.datefmt)}] {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text
