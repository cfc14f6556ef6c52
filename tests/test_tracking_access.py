"""Who gets into the shared tracking server (scripts/tracking_server.sh), and that no secret leaves
its file: the server, its database and the jobs as clients, all real (the jobs classical, each a
process forked with al-run's imports made: tests/_preforked.py)."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

import _preforked
from _app_helpers import AL_RUN, QUICK_CLASSICAL as QUICK
from conftest import add_tracking_user, read_credentials

from al_experiments.app.cli import CONF_PACKAGE  # noqa: F401  (registers the configs)
from al_experiments.app.errors import ConfigError
from al_experiments.app.precheck import check_command

pytestmark = pytest.mark.slow


def _script(server, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(server.script), *command], env=server.env, capture_output=True, text=True,
                          timeout=300)


def _request(server, path: str, *, user: tuple[str, str] | None = None, method: str = "GET",
             json: dict | None = None, headers: dict | None = None, trusted: str | bool | None = None):
    """A request verifying the server against its certificate, or against ``trusted`` (True:
    the certificate authorities every client trusts)."""
    import requests

    verify = server.client["MLFLOW_TRACKING_SERVER_CERT_PATH"] if trusted is None else trusted
    return requests.request(method, server.uri + path, json=json, headers=headers or {}, auth=user, timeout=30,
                            verify=verify)


def _new_user(server, name: str, *experiments: str) -> tuple[str, str]:
    path, printed = add_tracking_user(server.script, server.env, name, *experiments)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = read_credentials(path)
    assert credentials[1] not in printed  # the password is never printed
    return credentials


def _experiment(server, user, name: str):
    return _request(server, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}", user=user)


def test_strangers_are_refused(tracking_server):
    tester = (tracking_server.client["MLFLOW_TRACKING_USERNAME"], tracking_server.client["MLFLOW_TRACKING_PASSWORD"])
    search = "/api/2.0/mlflow/experiments/search?max_results=5"
    assert _request(tracking_server, search).status_code == 401
    assert _request(tracking_server, search, user=(tester[0], tester[1] + "x")).status_code == 401
    created = _request(tracking_server, "/api/2.0/mlflow/experiments/create", method="POST", json={"name": "intruder"})
    assert created.status_code == 401
    assert _request(tracking_server, search, user=tester).status_code == 200
    # the admin sees every experiment: no experiment named "intruder" was made
    admin = ("admin", (tracking_server.folder / "secrets" / "admin-password").read_text())
    assert _experiment(tracking_server, admin, "intruder").status_code == 404
    # the port speaks TLS only, with a certificate a client that verifies does not take on trust
    import requests

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(tracking_server.uri.replace("https:", "http:") + "/health", timeout=10)
    with pytest.raises(requests.exceptions.SSLError):
        _request(tracking_server, "/health", trusted=True)


def test_a_user_reaches_only_the_experiments_granted(tracking_server):
    alice = _new_user(tracking_server, "alice", "alice-experiment")
    bob = _new_user(tracking_server, "bob")
    assert _experiment(tracking_server, alice, "alice-experiment").status_code == 200
    assert _experiment(tracking_server, bob, "alice-experiment").status_code == 403
    own = _request(tracking_server, "/api/2.0/mlflow/experiments/create", user=bob, method="POST",
                   json={"name": "bob-experiment"})
    assert own.status_code == 200, own.text  # who creates an experiment manages it
    assert _experiment(tracking_server, bob, "bob-experiment").status_code == 200
    assert _experiment(tracking_server, alice, "bob-experiment").status_code == 403
    experiment_id = own.json()["experiment_id"]
    run = {"experiment_id": experiment_id}
    assert _request(tracking_server, "/api/2.0/mlflow/runs/create", user=alice, method="POST", json=run).status_code == 403
    assert _script(tracking_server, "grant", "alice", "bob-experiment", "READ").returncode == 0
    assert _experiment(tracking_server, alice, "bob-experiment").status_code == 200
    assert _request(tracking_server, "/api/2.0/mlflow/runs/create", user=alice, method="POST", json=run).status_code == 403
    assert _script(tracking_server, "grant", "alice", "bob-experiment", "EDIT").returncode == 0
    assert _request(tracking_server, "/api/2.0/mlflow/runs/create", user=alice, method="POST", json=run).status_code == 200
    refused = _script(tracking_server, "grant", "alice", "bob-experiment", "OWNER")
    assert refused.returncode == 1 and "is not one of READ, EDIT, MANAGE" in refused.stderr


def test_a_job_is_told_why_the_server_refuses_it(tracking_server, tmp_path):
    """The refusals a user meets, each one sentence with the fix, at once (not after the wait for a
    server that does not answer), and no run made."""
    _new_user(tracking_server, "carol", "carol-experiment")
    cases = [
        ({}, "mlflow.experiment_name=x", "is not trusted (self-signed certificate); point MLFLOW_TRACKING_SERVER_CERT_PATH"),
        ({"MLFLOW_TRACKING_SERVER_CERT_PATH": tracking_server.client["MLFLOW_TRACKING_SERVER_CERT_PATH"]},
         "mlflow.experiment_name=x", "refused a request without credentials (HTTP 401); set MLFLOW_TRACKING_USERNAME"),
        ({**tracking_server.client, "MLFLOW_TRACKING_PASSWORD": "wrong"}, "mlflow.experiment_name=x",
         "refused the password of user 'tester' (HTTP 401)"),
        (tracking_server.client, "mlflow.experiment_name=carol-experiment",
         "User 'tester' has no permission on experiment 'carol-experiment'"),
    ]
    for number, (client, experiment, needle) in enumerate(cases):
        folder = tmp_path / str(number)
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        result = _preforked.run([*AL_RUN, *QUICK, f"mlflow.tracking_uri={tracking_server.uri}", experiment,
                                 "mlflow.server_wait_s=60"], cwd=folder, env={**env, **client, "HOME": str(folder)},
                                timeout=300)
        assert result.returncode == 1, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [result.stderr.strip()] and needle in result.stderr, result.stderr
        assert "Waiting" not in result.stdout + result.stderr
        assert not list(folder.rglob("*.csv"))


def test_foreign_hosts_and_origins_are_refused(tracking_server):
    """MLflow's Host-header and CORS checks, on the gunicorn server the script runs."""
    user = (tracking_server.client["MLFLOW_TRACKING_USERNAME"], tracking_server.client["MLFLOW_TRACKING_PASSWORD"])
    port = tracking_server.uri.rsplit(":", 1)[1]
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _request(tracking_server, search, user=user, headers={"Host": f"attacker.example:{port}"}).status_code == 403
    assert _request(tracking_server, search, user=user, headers={"Host": f"localhost:{port}"}).status_code == 200
    create = "/api/2.0/mlflow/experiments/create"
    foreign = _request(tracking_server, create, user=user, method="POST", json={"name": "from-a-web-page"},
                       headers={"Origin": "https://attacker.example"})
    assert foreign.status_code == 403
    own = _request(tracking_server, create, user=user, method="POST", json={"name": "from-the-ui"},
                   headers={"Origin": f"https://127.0.0.1:{port}"})
    assert own.status_code == 200, own.text  # the UI, served from the server's own origin
    assert _request(tracking_server, "/", user=user).headers.get("X-Frame-Options") == "DENY"


def test_the_database_takes_its_password_on_loopback_only(tracking_server):
    secrets = tracking_server.folder / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for path in secrets.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    postgres = tracking_server.folder / "postgres"
    hba = [line.split() for line in (postgres / "pg_hba.conf").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert hba == [["host", "all", "mlflow", "127.0.0.1/32", "scram-sha-256"]]
    psql = next(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    port = tracking_server.env["TRACKING_PG_PORT"]
    base = [str(psql), "-h", "127.0.0.1", "-p", port, "-U", "mlflow", "-d", "mlflow", "-w", "-tAc"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    without = subprocess.run([*base, "SELECT 1"], env={**env, "PGPASSFILE": os.devnull}, capture_output=True, text=True)
    assert without.returncode != 0 and "password" in without.stderr, without.stderr
    with_file = {**env, "PGPASSFILE": str(secrets / "pgpass")}
    settings = subprocess.run([*base, "SHOW listen_addresses; SHOW unix_socket_directories; SHOW password_encryption"],
                              env=with_file, capture_output=True, text=True)
    assert settings.stdout.split() == ["127.0.0.1", "scram-sha-256"], settings.stdout + settings.stderr
    stored = subprocess.run([*base, "SELECT rolpassword FROM pg_authid WHERE rolname = 'mlflow'"], env=with_file,
                            capture_output=True, text=True)
    assert stored.stdout.startswith("SCRAM-SHA-256$"), stored.stdout + stored.stderr
    assert (secrets / "pg-password").read_text() not in " ".join(_server_command_lines())


def _server_command_lines() -> list[str]:
    """Every process's command line, as any local account can read them."""
    lines = []
    for proc in Path("/proc").iterdir():
        try:
            lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return lines


def test_a_canary_password_never_leaves_its_file(tracking_server, tmp_path):
    """A user's password, given in each way a user could give it: the two MLflow reads (the
    environment, ~/.mlflow/credentials) log and finish; the ways that would record it (in the URI
    on the command line, in MLFLOW_TRACKING_URI, through an interpolation) are refused, the
    sentence masking it. Then no file of any job, no output, no server log, no artifact and no
    row of either database holds the password, nor the Basic header made from it."""
    user, canary = _new_user(tracking_server, "canary", "canary-experiment")
    cert = tracking_server.client["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    home = tmp_path / "home"
    (home / ".mlflow").mkdir(parents=True)
    (home / ".mlflow" / "credentials").write_text(
        f"[mlflow]\nmlflow_tracking_username = {user}\nmlflow_tracking_password = {canary}\n")
    with_secret_uri = tracking_server.uri.replace("https://", f"https://{user}:{canary}@")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    base_env.update({"MLFLOW_TRACKING_SERVER_CERT_PATH": cert, "HOME": str(tmp_path / "empty-home")})
    uri = f"mlflow.tracking_uri={tracking_server.uri}"
    experiment = "mlflow.experiment_name=canary-experiment"
    ways = {
        "environment": ({"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": canary}, [uri, experiment]),
        "credentials file": ({"HOME": str(home)}, [uri, experiment]),
        "sweep, environment": ({"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": canary},
                               ["-m", uri, experiment, "seed=0,1"]),
        "uri on the command line": ({}, [f"mlflow.tracking_uri={with_secret_uri}", experiment]),
        "uri in a sweep": ({}, ["-m", f"mlflow.tracking_uri={with_secret_uri}", experiment, "seed=0,1"]),
        "MLFLOW_TRACKING_URI": ({"MLFLOW_TRACKING_URI": with_secret_uri}, [experiment]),
        "interpolation": ({"SECRET_URI": with_secret_uri}, ["mlflow.tracking_uri=${oc.env:SECRET_URI}", experiment]),
    }
    outputs = []
    for number, (name, (env, args)) in enumerate(ways.items()):
        folder = tmp_path / f"job{number}"
        folder.mkdir()
        result = _preforked.run([*AL_RUN, *args, *QUICK, f"state_dir={folder / 'state'}"], cwd=folder,
                                env={**base_env, **env}, timeout=600)
        outputs.append(result.stdout + result.stderr)
        refused = "uri" in name.lower() or name == "interpolation"
        assert result.returncode == (1 if refused else 0), (name, result.stderr[-2000:])
        if refused:
            assert f"https://{user}:***@" in result.stderr and "would be logged" in result.stderr, (name, result.stderr)
            assert not any(folder.iterdir()), (name, list(folder.rglob("*")))  # refused before Hydra saves a thing
        else:
            assert list(folder.rglob("*.csv")) and list(folder.rglob("*.meta.json")) and list(folder.rglob(".hydra")), name
    basic = base64.b64encode(f"{user}:{canary}".encode()).decode()
    dumps = [_dump(tracking_server, database) for database in ("mlflow", "mlflow_auth")]
    assert "canary-experiment" in dumps[0] and user in dumps[1]  # the dumps are of the right databases
    haystacks = {"output": "\n".join(outputs), **{f"dump {i}": dump for i, dump in enumerate(dumps)}}
    for path in [*tmp_path.rglob("*"), *(tracking_server.folder / "artifacts").rglob("*"),
                 tracking_server.folder / "mlflow-server.log"]:
        if path.is_file() and home not in path.parents:
            haystacks[str(path)] = path.read_bytes().decode(errors="replace")
    assert len(haystacks) > 30, sorted(haystacks)  # the jobs' files, artifacts and logs were read
    for where, text in haystacks.items():
        assert canary not in text and basic not in text, where


def _dump(server, database: str) -> str:
    pg_dump = next(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
    env = {**os.environ, "PGPASSFILE": str(server.folder / "secrets" / "pgpass")}
    dumped = subprocess.run([str(pg_dump), "-h", "127.0.0.1", "-p", server.env["TRACKING_PG_PORT"], "-U", "mlflow",
                             "-w", "--data-only", database], env=env, capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    return dumped.stdout


def test_a_uri_with_a_credential_is_refused_in_process(capsys):
    """No server needed: the command is refused before Hydra starts (so before anything is
    written), in the sweep as well, and the secret is in no message."""
    for args in (["mlflow.tracking_uri=https://user:s3cret@tracking.example:5050"],
                 ["-m", "mlflow.tracking_uri='http://tracking.example/?token=s3cret'", "seed=0,1"],
                 ["mlflow.tracking_uri=http://tracking.example/?token=s3cret"],  # unquoted: cannot be parsed
                 ["mlflow.tracking_uri=postgresql://mlflow:s3cret@127.0.0.1:5433/mlflow"]):
        with pytest.raises(ConfigError) as info:
            check_command([*args, *QUICK])
        message = str(info.value)
        assert "s3cret" not in message + "".join(capsys.readouterr()), message
        assert "would be logged with the run" in message or "cannot be read" in message, message