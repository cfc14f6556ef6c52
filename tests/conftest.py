"""Fixtures shared by several test modules."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from _app_helpers import QUICK, free_port, store_uri, with_store
from omegaconf import DictConfig

from al_experiments.acquisition import UnknownQueryError, unregister_query


# Session fixtures that start real servers (PostgreSQL with an MLflow server, a SLURM cluster),
# and the files whose tests use them: these files run in one xdist worker, so a run starts each
# server once, not once per worker.
SHARED_SERVERS = ("tracking_server", "slurm_cluster")
SHARED_SERVER_FILES = ("tests/test_launchers.py", "tests/test_tracking_access.py", "tests/test_tracking_server.py")
UNIT_SECONDS = Path(__file__).with_name("unit_seconds.json")


def _work_unit(nodeid: str) -> str:
    """A test's work unit under ``make test``'s scheduler: its file, or the shared servers' unit."""
    path = nodeid.split("::", 1)[0]
    return "servers" if path in SHARED_SERVER_FILES else path


def pytest_xdist_make_scheduler(config, log):
    """Files whole on one worker, as ``--dist loadfile`` gives them (module fixtures are made
    once), with the shared servers' files as one unit; handed out in collection order."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """The servers' unit first, then the others longest first, by the seconds each took in a
    measured run (tests/unit_seconds.json; a unit missing there by its count of ``slow`` tests,
    after those listed): xdist hands units out in this order (``--no-loadscope-reorder``), so no
    long unit starts last while the other worker idles. The order changes how long ``make test``
    takes, never what it checks. A test of a shared server outside the listed files is refused:
    it would start a second server in another worker."""
    units = {item: _work_unit(item.nodeid) for item in items}
    measured = json.loads(UNIT_SECONDS.read_text()) if UNIT_SECONDS.exists() else {}
    slow: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for index, (item, unit) in enumerate(units.items()):
        if unit != "servers" and set(SHARED_SERVERS) & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid} uses a shared server: add its file to SHARED_SERVER_FILES "
                                    "in tests/conftest.py.")
        slow[unit] = slow.get(unit, 0) + (item.get_closest_marker("slow") is not None)
        first_seen.setdefault(unit, index)
    # stable: a unit keeps its tests' order
    items.sort(key=lambda item: (units[item] != "servers", -measured.get(units[item], 0.0), -slow[units[item]],
                                 first_seen[units[item]]))


def unit_seconds(junit_xml: str) -> dict[str, float]:
    """Seconds per work unit from a JUnit report of ``make test`` (``--junitxml``), for
    tests/unit_seconds.json: ``python tests/conftest.py REPORT.xml > tests/unit_seconds.json``."""
    import xml.etree.ElementTree as ElementTree

    seconds: dict[str, float] = {}
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        unit = _work_unit(path)
        seconds[unit] = seconds.get(unit, 0.0) + float(case.get("time", 0.0))
    return {unit: round(value, 1) for unit, value in sorted(seconds.items(), key=lambda kv: -kv[1])}


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


def compose_config(*overrides: str) -> DictConfig:
    """``al-run``'s config for ``overrides``, composed with Hydra's compose API as ``al-run``
    composes it (the packaged tree, the schema registered)."""
    from hydra import compose, initialize_config_module

    from al_experiments.app.cli import CONF_PACKAGE
    from al_experiments.app.schema import register_configs

    register_configs()
    with initialize_config_module(CONF_PACKAGE.removeprefix("pkg://"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def in_folder(cfg: DictConfig, folder: Path) -> DictConfig:
    """``cfg`` with its results (MLflow store, metrics, checkpoints) in ``folder``."""
    cfg.mlflow.tracking_uri = store_uri(folder)
    cfg.metrics_dir = str(folder / "metrics")
    cfg.state_dir = str(folder / ".al-state")
    return cfg


@pytest.fixture(scope="session")
def smoke_config() -> DictConfig:
    """The smoke job's config (digits, 2 rounds, few epochs), composed once a session."""
    return compose_config(*QUICK)


@pytest.fixture
def job_config(smoke_config, folder) -> Callable[..., DictConfig]:
    """``job_config(*overrides)``: the smoke job's config with its results in the test's folder
    (which holds an empty MLflow store); the session's composition is copied unless
    ``overrides`` need a composition of their own."""
    def make(*overrides: str) -> DictConfig:
        cfg = compose_config(*QUICK, *overrides) if overrides else copy.deepcopy(smoke_config)
        return in_folder(cfg, folder)

    return make


def traced_peak(call: Callable[[], object]) -> tuple[object, int]:
    """``call()``'s result and the peak bytes Python and numpy allocated while it ran
    (tracemalloc), for tests that hold a computation to its memory bound."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="session", autouse=True)
def _preforked_module_list(tmp_path_factory):
    """One list of a job's imports for every preforked server of this session: in the folder of
    its xdist workers (their own folders' parent), or of this process alone."""
    import os

    import _preforked

    folder = tmp_path_factory.getbasetemp()
    _preforked.module_list = (folder.parent if "PYTEST_XDIST_WORKER" in os.environ else folder) / "preforked-modules.txt"


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


if __name__ == "__main__":
    import sys

    print(json.dumps(unit_seconds(sys.argv[1]), indent=1))
