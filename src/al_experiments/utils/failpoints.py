"""Named failure points for the fault-injection tests: ``AL_EXPERIMENTS_FAILPOINTS`` lists
``name`` or ``name@n`` entries (comma-separated); reaching one kills the process with SIGKILL,
the one signal nothing can clean up after. ``n`` is the round for the points a round passes
(``after_checkpoint@2``), else the how-many-th time this process reaches the point
(``before_replace@3``: the third file replaced). ``name@n:wait`` instead holds the process
there until a signal ends it, and ``name@n:pause`` stops it (SIGSTOP) until a SIGCONT lets it go
on from there (``wait_until_paused`` is the test's side), so a test can interrupt a job, or
change the world around it, at a known point however fast the machine is. Without the variable
this is a dict lookup.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time

ENV = "AL_EXPERIMENTS_FAILPOINTS"

# How often this process reached each point that has no round of its own (only counted while
# the variable is set).
_reached: collections.Counter[str] = collections.Counter()
_counting = threading.Lock()


def failpoint(name: str, index: int | None = None) -> None:
    """Die, hold or pause here if the environment asks for it (``name`` anywhere, or
    ``name@<index>``; without ``index`` the point counts its own visits)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    if index is None:
        with _counting:
            _reached[name] += 1
            index = _reached[name]
    for entry in wanted.split(","):
        point, _, action = entry.strip().partition(":")
        if point == name or point == f"{name}@{index}":
            if action == "pause":  # the parent sees it stopped (waitpid's WUNTRACED)
                os.kill(os.getpid(), signal.SIGSTOP)
                return
            if action == "wait":
                while True:  # a signal's handler (SIGTERM, Ctrl-C) raises out of the sleep
                    time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)


def wait_until_paused(pid: int, hang_guard_s: float = 300.0) -> None:
    """Return once the child ``pid`` has stopped itself at a ``:pause`` point; raise
    ``AssertionError`` if it ended instead. ``hang_guard_s`` only keeps a broken job from
    hanging the caller for ever: no correct run comes near it, however slow the machine."""
    deadline = time.monotonic() + hang_guard_s
    while True:
        done, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
        if done:
            if not os.WIFSTOPPED(status):
                raise AssertionError(f"process {pid} ended (wait status {status}) before its pause point")
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not reach its pause point within {hang_guard_s:g} s")
        time.sleep(0.05)
