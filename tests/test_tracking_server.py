"""The shared tracking server (scripts/tracking_server.sh: PostgreSQL + mlflow server) and the
jobs as its clients: waiting out an outage, one run per creation, the load test in small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script(server, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(server.script), command], env=server.env, capture_output=True,
                          text=True, timeout=300)


def _server_commands(server) -> list[str]:
    """The command lines of the tracking server's processes (its own session)."""
    session = int((server.folder / "mlflow-server.pid").read_text())
    listed = subprocess.run(["ps", "-o", "args=", "-s", str(session)], capture_output=True, text=True).stdout
    return listed.splitlines()


def test_an_unanswered_request_is_told_from_a_refused_one():
    """What the wait acts on: a server that is not there (connection refused, after MLflow's own
    retries) is unreachable; an answer that refuses the request is not."""
    import os

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from al_experiments.tracking.server_wait import is_unreachable

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        with pytest.raises(MlflowException) as refused:
            MlflowClient("http://127.0.0.1:9").get_experiment_by_name("x")
    finally:
        del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert is_unreachable(refused.value)
    assert not is_unreachable(MlflowException("Run 'abc' not found", error_code="RESOURCE_DOES_NOT_EXIST"))
    assert not is_unreachable(ValueError("not an MLflow error"))


class SteppedTime:
    """A wait's clock and sleep: sleeping moves the clock, nothing else does, so a test checks
    the wait's bound without spending it, however fast the machine."""

    def __init__(self, on_sleep=None) -> None:
        self.now, self.sleeps, self._on_sleep = 0.0, [], on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self._on_sleep is not None:
            self._on_sleep(len(self.sleeps))


@pytest.fixture
def no_http_retries(monkeypatch):
    """MLflow's own retries off: the wait under test is the only one."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def test_a_server_that_never_answers_is_waited_for_its_bound_then_tried_once(no_http_retries):
    """The wait polls /health every second until its bound (here 2 s) has passed since the
    failure, then lets the error go up; the job's later calls try once. Another job's wait for
    the same server has learnt nothing from it."""
    from mlflow.exceptions import MlflowException

    from al_experiments.tracking import mlflow_store, server_wait

    uri = "http://127.0.0.1:9"
    time = SteppedTime()
    waiting = server_wait.ServerWait(uri, 2.0, clock=time.clock, sleep=time.sleep)
    client = mlflow_store.client(uri, waiting)
    with pytest.raises(MlflowException):
        client.get_experiment_by_name("x")
    assert time.now == 2.0 and time.sleeps == [1.0, 1.0] and waiting.given_up
    with pytest.raises(MlflowException):
        mlflow_store.client(uri, waiting).get_experiment_by_name("x")  # another client of the job
    assert time.sleeps == [1.0, 1.0], "a server the job gave up on is tried once"

    other_time = SteppedTime()
    other = server_wait.ServerWait(uri, 2.0, clock=other_time.clock, sleep=other_time.sleep)
    with pytest.raises(MlflowException):
        mlflow_store.client(uri, other).get_experiment_by_name("x")
    assert other_time.sleeps == [1.0, 1.0]


def test_a_server_that_comes_back_within_the_bound_gets_the_call_again(no_http_retries, caplog):
    """A server that answers 503 (restarting) until the wait's third poll: the call is made
    again once /health answers, and returns the server's answer."""
    import http.server
    import json
    import threading

    from al_experiments.tracking import mlflow_store, server_wait

    class Restarting(http.server.BaseHTTPRequestHandler):
        answering = False

        def do_GET(self) -> None:
            if not Restarting.answering:
                self.send_response(503)
                self.end_headers()
                return
            body = b"OK" if self.path == "/health" else json.dumps({"experiment": {
                "experiment_id": "7", "name": "x", "artifact_location": "a", "lifecycle_stage": "active"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Restarting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"

        def back_at_third_poll(sleeps: int) -> None:
            Restarting.answering = sleeps >= 2

        time = SteppedTime(on_sleep=back_at_third_poll)
        waiting = server_wait.ServerWait(uri, 60.0, clock=time.clock, sleep=time.sleep)
        with caplog.at_level("WARNING", logger=server_wait.__name__):
            experiment = mlflow_store.client(uri, waiting).get_experiment_by_name("x")
    finally:
        server.shutdown()
        server.server_close()
    assert experiment.experiment_id == "7"
    assert time.sleeps == [1.0, 1.0] and not waiting.given_up
    assert f"The tracking server at {uri} answers again after 2.0 s" in caplog.text


@pytest.mark.slow
def test_a_repeated_creation_leaves_one_run(as_tracking_user):
    """A run created by a request whose reply was lost has the creation's token; creating the run
    again (MLflow's retry) removes it, so the job has exactly one run."""
    from mlflow import MlflowClient

    from al_experiments.tracking import mlflow_store

    uri = as_tracking_user.uri
    client = MlflowClient(uri)
    experiment_id = mlflow_store.ensure_experiment(uri, "repeated-creation")
    lost = client.create_run(experiment_id, tags={mlflow_store.CREATION_TAG: "token-1"}).info.run_id
    other = client.create_run(experiment_id, tags={mlflow_store.CREATION_TAG: "token-2"}).info.run_id
    kept = mlflow_store.create_run(uri, experiment_id, "job", {"seed": "0"}, token="token-1")
    active = {r.info.run_id for r in client.search_runs([experiment_id])}
    assert active == {kept, other}
    assert client.get_run(lost).info.lifecycle_stage == "deleted"


@pytest.mark.slow
def test_load_of_concurrent_jobs_through_two_restarts(tracking_server):
    """benchmarks/bench_tracking.py in small: 6 jobs of 15 rounds of 0.5 s with the server stopped
    twice by the script (``restart``: SIGTERM; ``kill`` then ``up``: SIGKILL) while all of them
    run: every metric of every round once, every run FINISHED. (How long a round waited is the
    benchmark's figure, not a check: the outage is met by the clients running through it.) Then
    the script's own answers: ``status`` says what runs, and fails with the database alone."""
    import re

    status = _script(tracking_server, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "running: postgresql" in status.stdout and "running: mlflow server" in status.stdout
    assert _script(tracking_server, "uri").stdout.strip() == tracking_server.uri
    assert _server_commands(tracking_server) and not [c for c in _server_commands(tracking_server) if "huey" in c
                                                     or "job_runner" in c]  # MLflow's GenAI job runner is off
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_tracking.py"), "--clients", "--paced", "6",
         "--round-s", "0.5", "--rounds", "15", "--restarts-only"], env=tracking_server.env, capture_output=True,
        text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("N=")]
    assert "6/6 runs FINISHED, 0 values missing, 0 twice" in line and "failed clients 0" in line, line
    # and between the kill and the next ``up``, ``status`` failed: the database alone is not a server
    assert re.search(r"SIGTERM at [\d.]+ s with 6 clients running; "
                     r"SIGKILL at [\d.]+ s with 6 clients running \(status while down: exit 1\)", line), line
    assert _script(tracking_server, "status").returncode == 0
