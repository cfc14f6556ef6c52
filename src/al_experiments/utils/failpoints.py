"""Named failure points for the fault-injection tests: ``AL_EXPERIMENTS_FAILPOINTS`` lists
``name`` or ``name@round`` entries (comma-separated); reaching one kills the process with
SIGKILL, the one signal nothing can clean up after. ``name@round:wait`` instead holds the
process there until a signal ends it, and ``name@round:pause`` stops it (SIGSTOP) until a
SIGCONT lets it go on from there, so a test can interrupt a job, or change the world around it,
at a known point however fast the machine is. Without the variable this is a dict lookup.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "AL_EXPERIMENTS_FAILPOINTS"


def failpoint(name: str, round_index: int | None = None) -> None:
    """Die, hold or pause here if the environment asks for it (``name`` anywhere, or
    ``name@<round>``)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    for entry in wanted.split(","):
        point, _, action = entry.strip().partition(":")
        if point == name or (round_index is not None and point == f"{name}@{round_index}"):
            if action == "pause":  # the parent sees it stopped (waitpid's WUNTRACED)
                os.kill(os.getpid(), signal.SIGSTOP)
                return
            if action == "wait":
                while True:  # a signal's handler (SIGTERM, Ctrl-C) raises out of the sleep
                    time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
