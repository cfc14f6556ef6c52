"""SIGTERM as an interruption: ``scancel``, ``kill`` and CI time-outs unwind the process like a
Ctrl-C, so every run it holds is recorded as KILLED (and resumed later), never left RUNNING.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled wherever a Ctrl-C is."""


def raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"received signal {signum}")


def _may_install() -> bool:
    # Only where nobody else handles SIGTERM (submitit installs its own in its workers), and
    # only from the main thread, the one place Python allows a handler to be set.
    return threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def install_sigterm_as_interrupt() -> None:
    """For the rest of the process, where SIGTERM has its default action."""
    if _may_install():
        signal.signal(signal.SIGTERM, raise_terminated)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """For the duration of the block, where SIGTERM has its default action."""
    if not _may_install():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
