"""Resumable jobs through the real CLI: a finished job is skipped, a job killed (SIGKILL) at any
point of a round resumes into the same MLflow run and CSV and ends with exactly the results of an
uninterrupted run; resume=false starts afresh and leaves the old results alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from _app_helpers import csv_files, mlflow_runs, run_cli, store_uri

pytestmark = pytest.mark.slow

# A short job: digits, 3 rounds, few epochs. Times and run ids are the only things that differ
# between an interrupted and an uninterrupted run.
JOB = ["+experiment=smoke", "loop.max_rounds=3", "seed=3"]
TIME_COLUMNS = {"train_time", "query_time", "optim_time", "eval_time"}


def csv_rows(path: Path) -> list[dict[str, str]]:
    from al_experiments.tracking.files import read_csv_dicts, read_text

    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in read_csv_dicts(read_text(path))]


def run_record(tmp_path: Path, run) -> dict:
    """A run's content without times: params, tags we set, and every metric history."""
    from mlflow import MlflowClient

    client = MlflowClient(store_uri(tmp_path))
    metrics = {}
    for key in run.data.metrics:
        if key.endswith("_time") or key.endswith("_seconds"):
            continue
        metrics[key] = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
    # The store's path is the only param that names the test's folder.
    params = {k: v.replace(str(tmp_path), "<tmp>") for k, v in run.data.params.items() if k != "state_dir"}
    tags = {k: run.data.tags.get(k) for k in ("query", "seed", "job_identity", "experiment_file")}
    return {"status": run.info.status, "params": params, "tags": tags, "metrics": metrics}


def uninterrupted(tmp_path: Path, *extra: str) -> tuple[list, dict]:
    done = run_cli(tmp_path, *JOB, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = mlflow_runs(tmp_path)
    (path,) = csv_files(tmp_path)
    return csv_rows(path), run_record(tmp_path, run)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return uninterrupted(tmp_path_factory.mktemp("reference"))


def killed_at(tmp_path: Path, point: str) -> subprocess.CompletedProcess:
    env_extra = {"AL_EXPERIMENTS_FAILPOINTS": point}
    from _app_helpers import cli_command

    command, env = cli_command(tmp_path, *JOB)
    env.update(env_extra)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("point", ["after_run_created", "before_checkpoint@1", "after_checkpoint@2",
                                   "after_csv@2", "after_mlflow@1", "after_run_finished"])
def test_a_job_killed_at_any_point_resumes_to_the_uninterrupted_results(tmp_path, reference, point):
    killed = killed_at(tmp_path, point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run_cli(tmp_path, *JOB)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 1, "the resumed job continued its own run"
    (path,) = csv_files(tmp_path)
    rows, record = reference
    assert csv_rows(path) == rows
    assert run_record(tmp_path, runs[0]) == record


def test_a_finished_job_is_skipped_and_resume_false_runs_it_afresh_apart(tmp_path, reference):
    first = run_cli(tmp_path, *JOB)
    assert first.returncode == 0
    (path,) = csv_files(tmp_path)
    before = path.read_bytes()
    again = run_cli(tmp_path, *JOB)
    assert again.returncode == 0 and "finished before" in again.stderr + again.stdout
    assert len(mlflow_runs(tmp_path)) == 1 and path.read_bytes() == before

    # resume=false needs a place for its new CSV: the old one is kept, never overwritten.
    fresh = run_cli(tmp_path, *JOB, "resume=false", f"metrics_dir={tmp_path / 'fresh'}")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert path.read_bytes() == before
    assert csv_rows(next((tmp_path / "fresh").glob("*.csv"))) == reference[0]


def test_two_kills_in_a_row_then_a_resume(tmp_path, reference):
    assert killed_at(tmp_path, "after_checkpoint@1").returncode == -9
    assert killed_at(tmp_path, "after_csv@3").returncode == -9
    resumed = run_cli(tmp_path, *JOB)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = mlflow_runs(tmp_path)
    (path,) = csv_files(tmp_path)
    assert csv_rows(path) == reference[0] and run_record(tmp_path, run) == reference[1]


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 16 KiB tmpfs with one free 4 KiB page: the second file written into it fails (ENOSPC)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill up needs root")
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    (folder / "filler").write_bytes(b"\0" * 12288)
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_fails_clearly_and_the_rerun_resumes_after_space_is_freed(tmp_path, reference, tiny_filesystem):
    state = f"state_dir={tiny_filesystem / 'state'}"
    full = run_cli(tmp_path, *JOB, state)
    assert full.returncode == 1
    lines = [line for line in full.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "re-run the same command" in lines[0], full.stderr[-2000:]
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FAILED" and "No space left" in run.data.tags["error"]
    assert csv_files(tmp_path) == []  # nothing was written past the last checkpoint

    (tiny_filesystem / "filler").unlink()  # space freed
    resumed = run_cli(tmp_path, *JOB, state)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = mlflow_runs(tmp_path)
    (path,) = csv_files(tmp_path)
    assert csv_rows(path) == reference[0] and run_record(tmp_path, run) == reference[1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(tmp_path: Path, port: int) -> subprocess.Popen:
    import sys
    import time
    import urllib.request

    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    pytest.skip("mlflow server did not start within 120 s")


def _stop(server: subprocess.Popen) -> None:
    import signal

    os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def test_tracking_server_going_away_mid_run_then_coming_back(tmp_path):
    """The server dies after round 2: one sentence, non-zero exit, the CSV keeps its rounds;
    with the server back, the same command resumes the same run and completes it."""
    import json
    import time

    from mlflow import MlflowClient

    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(tmp_path, port)
    job = [*JOB[:-1], "seed=6", "loop.max_rounds=10", "model.fit.epochs=3000", f"mlflow.tracking_uri={uri}"]
    command, env = __import__("_app_helpers").cli_command(tmp_path, *job, tracking=False)
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            rounds = [json.loads(p.read_text())["loop"]["round"] for p in (tmp_path / ".al-state").glob("*/checkpoint.json")]
            if rounds and rounds[0] >= 2:
                break
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
            time.sleep(0.1)
    finally:
        _stop(server)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "The tracking store went away during the job" in lines[0], stderr[-3000:]
    (path,) = csv_files(tmp_path)
    written = len(path.read_text().splitlines()) - 1
    assert 2 <= written < 10

    server = _start_server(tmp_path, port)
    try:
        resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("al-experiments").experiment_id])
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "labeled_pool_size")]
        assert steps == list(range(1, 11))
        assert len(path.read_text().splitlines()) == 11
    finally:
        _stop(server)


def test_a_torn_csv_from_an_earlier_crash_is_rebuilt_from_the_checkpoint(tmp_path, reference):
    assert killed_at(tmp_path, "after_csv@2").returncode == -9
    (path,) = csv_files(tmp_path)
    text = path.read_bytes()
    path.write_bytes(text[: len(text) - 40])  # the last row cut in the middle
    resumed = run_cli(tmp_path, *JOB)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = mlflow_runs(tmp_path)
    assert csv_rows(path) == reference[0] and run_record(tmp_path, run) == reference[1]


def test_a_corrupt_meta_file_stops_the_job_before_any_run_and_is_left_alone(tmp_path):
    metrics = tmp_path / "old-metrics"
    metrics.mkdir()
    (metrics / ".meta.json").write_text('{"dataset": {"name": "digits"')  # truncated JSON
    result = run_cli(tmp_path, *JOB, f"metrics_dir={metrics}")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and ".meta.json" in lines[0], result.stderr[-3000:]
    assert (metrics / ".meta.json").read_text() == '{"dataset": {"name": "digits"'
    assert mlflow_runs(tmp_path) == []
