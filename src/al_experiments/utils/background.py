"""At most one task at a time on a worker thread, so the caller computes while the last result
is written: a job's round goes to its CSV and to MLflow while the next round trains.

Writing a round is mostly waiting (fsync, the tracking store's transaction), which the next
round's compute hides. ``wait`` re-raises what the task raised, so an error reaches the caller
one round later at most, before anything of the next round is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# How long an interrupted job waits for the write in flight before it unwinds anyway (the write
# is atomic or transactional: cut short, it is simply not there, and a resume adds it).
_GRACE_S = 10.0


class BackgroundTask:
    """Use as a context manager; ``submit`` a callable, ``wait`` for it."""

    def __init__(self, name: str = "al-experiments-writer") -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on a worker thread, after the task before it has finished."""
        self.wait()

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # handed to the caller by wait()
                self._error = exc

        # A daemon: a write that hangs must not keep an interrupted process alive.
        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the task in flight has finished; raises what it raised."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        error, self._error = self._error, None
        if error is not None:
            raise error

    def __enter__(self) -> "BackgroundTask":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc_type is None:
            self.wait()
            return False
        try:  # already unwinding: the task's own error, if any, would only hide this one
            self.wait(_GRACE_S)
        except BaseException:
            pass
        return False
