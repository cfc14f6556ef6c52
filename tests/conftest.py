"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
from _app_helpers import free_port, with_store

from al_experiments.acquisition import UnknownQueryError, unregister_query


@pytest.fixture
def cleanup():
    """Names registered by a test are removed afterwards so tests stay independent."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            unregister_query(name)
        except UnknownQueryError:
            pass


@pytest.fixture
def folder(tmp_path, tmp_path_factory):
    """The test's folder, with an empty MLflow store in it."""
    return with_store(tmp_path, tmp_path_factory)


@pytest.fixture(scope="session")
def tracking_server():
    """A PostgreSQL-backed MLflow server of scripts/tracking_server.sh in a folder and on ports of
    its own (root + apt needed, for Debian's postgresql); skip, saying why, if it cannot start.
    Yields its ``uri`` and the ``env`` that addresses it for the script (TRACKING_DIR, the ports)."""
    import os
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    script = Path(__file__).resolve().parents[1] / "scripts" / "tracking_server.sh"
    if os.geteuid() != 0:
        pytest.skip("the PostgreSQL tracking server needs root (apt-get, PostgreSQL as user postgres)")
    if shutil.which("apt-get") is None:
        pytest.skip("the PostgreSQL tracking server needs apt-get to install Debian's postgresql")

    folder = tempfile.mkdtemp(prefix="al-tracking-", dir="/var/tmp")
    os.chmod(folder, 0o755)  # PostgreSQL's user enters it
    env = {**os.environ, "TRACKING_DIR": folder, "TRACKING_PORT": str(free_port()),
           "TRACKING_PG_PORT": str(free_port()), "TRACKING_WORKERS": "2"}
    up = subprocess.run(["bash", str(script), "up"], env=env, capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        subprocess.run(["bash", str(script), "reset"], env=env, capture_output=True, timeout=120)
        pytest.skip(f"scripts/tracking_server.sh up failed (rc {up.returncode}): {up.stderr.strip()[-500:]}")
    uri = up.stdout.strip().splitlines()[-1]
    cert = subprocess.run(["bash", str(script), "cert"], env=env, capture_output=True, text=True).stdout.strip()
    username, password = read_credentials(add_tracking_user(script, env, "tester")[0])
    # what a user's job needs: the server's certificate to verify it, its credentials to sign in
    client = {"MLFLOW_TRACKING_SERVER_CERT_PATH": cert, "MLFLOW_TRACKING_USERNAME": username,
              "MLFLOW_TRACKING_PASSWORD": password}
    yield SimpleNamespace(uri=uri, env={**env, **client}, client=client, script=script, folder=Path(folder))
    subprocess.run(["bash", str(script), "reset"], env=env, capture_output=True, timeout=120)


def add_tracking_user(script, env, name, *experiments):
    """``tracking_server.sh add-user NAME [EXPERIMENT...]``: the path of the new user's credentials file, and
    everything the command printed."""
    import subprocess
    from pathlib import Path

    added = subprocess.run(["bash", str(script), "add-user", name, *experiments], env=env, capture_output=True, text=True,
                           timeout=120)
    assert added.returncode == 0, added.stderr
    return Path(added.stdout.strip().splitlines()[-1]), added.stdout + added.stderr


def read_credentials(path):
    """(user name, password) of a credentials file in MLflow's format."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["mlflow"]["mlflow_tracking_username"], parser["mlflow"]["mlflow_tracking_password"]


@pytest.fixture
def as_tracking_user(tracking_server, monkeypatch):
    """This process signs in to the shared server as the fixture's user, verifying its certificate."""
    for name, value in tracking_server.client.items():
        monkeypatch.setenv(name, value)
    return tracking_server
