"""The tracking server of scripts/tracking_server.sh, as the tracking benchmarks drive it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "tracking_server.sh"


def server(command: str, env: dict[str, str] | None = None) -> str:
    """``tracking_server.sh <command>``; its output (``up`` and ``uri`` print the URI)."""
    return subprocess.run(["bash", str(SCRIPT), command], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@contextlib.contextmanager
def running_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """The server's URI, started if it is not running, and then stopped again on the way out."""
    was_running = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True).returncode == 0
    uri = server("up", env).splitlines()[-1]
    try:
        yield uri
    finally:
        if not was_running:  # a server started here goes with it
            server("down", env)


def csv_rounds(metrics: Path) -> int:
    """Rounds written so far to the tf_al CSVs of a metrics folder (a header line each)."""
    return sum(max(0, len(path.read_text().splitlines()) - 1) for path in metrics.glob("*.csv"))
