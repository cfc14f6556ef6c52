"""Named failure points for the fault-injection tests: ``AL_EXPERIMENTS_FAILPOINTS`` lists
``name`` or ``name@round`` entries (comma-separated); reaching one kills the process with
SIGKILL, the one signal nothing can clean up after. Without the variable this is a dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "AL_EXPERIMENTS_FAILPOINTS"


def failpoint(name: str, round_index: int | None = None) -> None:
    """Die here if the environment asks for it (``name`` anywhere, or ``name@<round>``)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    entries = {entry.strip() for entry in wanted.split(",")}
    if name in entries or (round_index is not None and f"{name}@{round_index}" in entries):
        os.kill(os.getpid(), signal.SIGKILL)
