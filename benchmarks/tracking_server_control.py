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


def server_status(env: dict[str, str] | None = None) -> int:
    """``tracking_server.sh status``'s exit code: 0 while the server answers."""
    return subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True).returncode


@contextlib.contextmanager
def running_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """The server's URI, started if it is not running, and then stopped again on the way out.
    This process and its children sign in to it (``sign_in``)."""
    was_running = server_status(env) == 0
    uri = server("up", env).splitlines()[-1]
    try:
        sign_in(env)
        yield uri
    finally:
        if not was_running:  # a server started here goes with it
            server("down", env)


def csv_rounds(metrics: Path) -> int:
    """Rounds written so far to the tf_al CSVs of a metrics folder (a header line each)."""
    return sum(max(0, len(path.read_text().splitlines()) - 1) for path in metrics.glob("*.csv"))


def sign_in(env: dict[str, str] | None = None) -> None:
    """Jobs started from here verify the server's certificate and sign in: as the user of the
    environment's credentials if it has them, else as a new user made for this benchmark."""
    import configparser
    import os

    if env is not None:
        os.environ.update({k: v for k, v in env.items() if k.startswith("MLFLOW_TRACKING_")})
    os.environ.setdefault("MLFLOW_TRACKING_SERVER_CERT_PATH", server("cert", env))
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return
    path = subprocess.run(["bash", str(SCRIPT), "add-user", f"bench-{os.getpid()}-{os.urandom(3).hex()}"], env=env,
                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    credentials = configparser.ConfigParser()
    credentials.read(path)
    os.environ["MLFLOW_TRACKING_USERNAME"] = credentials["mlflow"]["mlflow_tracking_username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = credentials["mlflow"]["mlflow_tracking_password"]
