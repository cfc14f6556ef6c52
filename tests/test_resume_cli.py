"""Resumable jobs through the real CLI: a finished job is skipped, a job killed (SIGKILL) at any
point of a round resumes into the same MLflow run and CSV and ends with exactly the results of an
uninterrupted run; resume=false starts afresh and leaves the old results alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _preforked
from _app_helpers import QUICK_CLASSICAL, cli_command, csv_files, free_port, mlflow_runs, run_cli, store_uri, with_store
from al_experiments.utils.failpoints import ENV as FAILPOINTS

pytestmark = pytest.mark.slow

# A short job: digits, 3 rounds, few epochs. Times and run ids are the only things that differ
# between an interrupted and an uninterrupted run.
JOB = ["+experiment=smoke", "loop.max_rounds=3", "seed=3"]
# The same protocol with a classical model, for the kills at every point: what a kill can tear
# (checkpoint, CSV, MLflow run) is the job's, not the network's, and such a process starts
# without TensorFlow (so it is forked preloaded: tests/_preforked.py). A network's resume is
# killed once, after a checkpoint, in processes of the real al-run, below.
CLASSICAL_JOB = [*QUICK_CLASSICAL, "loop.max_rounds=3", "seed=3"]
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
    # The store's path is the only param that names the test's folder; where checkpoints and
    # compiled programs are kept is no part of the results.
    params = {k: v.replace(str(tmp_path), "<tmp>") for k, v in run.data.params.items()
              if k not in ("state_dir", "compile_cache")}
    tags = {k: run.data.tags.get(k) for k in ("query", "seed", "job_identity", "experiment_file")}
    return {"status": run.info.status, "params": params, "tags": tags, "metrics": metrics}


def uninterrupted_record(folder: Path) -> tuple[Path, list, dict]:
    """``folder``'s one run, finished: the folder, its CSV rows and its run record. Tests may add
    to the folder; the rows and record are read before any does."""
    (run,) = mlflow_runs(folder)
    (path,) = csv_files(folder)
    return folder, csv_rows(path), run_record(folder, run)


def job_config(folder: Path):
    """JOB's config as al-run started in ``folder`` composes it: its store and checkpoints there."""
    from conftest import compose_config

    return compose_config(*JOB, f"mlflow.tracking_uri={store_uri(folder)}", f"state_dir={folder / '.al-state'}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list, dict]:
    """The uninterrupted run of JOB, by ``run_job`` in this process (this test process has
    TensorFlow loaded already): what the job computes is what al-run's process computes, as the
    kill test below holds it to, and what only al-run's process shows is in the runs killed."""
    from al_experiments.app.job import JobContext, run_job

    folder = with_store(tmp_path_factory.mktemp("reference"), tmp_path_factory)
    cfg = job_config(folder)
    run_job(cfg, JobContext(output_dir=str(folder / "run")))
    return uninterrupted_record(folder)


@pytest.fixture(scope="module")
def classical_reference(tmp_path_factory) -> tuple[Path, list, dict]:
    """The uninterrupted run of CLASSICAL_JOB."""
    folder = with_store(tmp_path_factory.mktemp("reference"), tmp_path_factory)
    done = run_cli(folder, *CLASSICAL_JOB, preforked=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return uninterrupted_record(folder)


def killed_at(tmp_path: Path, point: str, job: list[str] = JOB) -> subprocess.CompletedProcess:
    """``job`` run with the failpoint ``point``; a classical job preforked (tests/_preforked.py)."""
    return run_cli(tmp_path, *job, preforked=job is CLASSICAL_JOB, env={FAILPOINTS: point})


def assert_part_of(record: dict, reference: dict) -> None:
    """An interrupted run holds part of the uninterrupted one: its tags, some of its params, and
    the first part of each metric's history, no value changed or logged twice."""
    assert record["tags"] == reference["tags"]
    assert record["params"].items() <= reference["params"].items()
    for key, history in record["metrics"].items():
        assert history == reference["metrics"][key][: len(history)], key


# Every named point, with the CSV rows and MLflow rounds the job holds when it dies there. Each
# is reached by the resume after the kill before it: a resume continues after the last
# checkpoint, so the points of a checkpointed round never come again.
KILLS = [("after_run_created", 0, 0), ("before_checkpoint@1", 0, 0), ("after_mlflow@1", 1, 1),
         ("after_checkpoint@2", 1, 1), ("after_csv@3", 3, 2), ("after_run_finished", 3, 3)]


def test_a_job_killed_at_every_point_in_turn_resumes_each_time_to_the_uninterrupted_results(folder, classical_reference):
    """Every kill but the first lands in the resume of the one before, so each point is followed
    by a resume, and what that resume has left when the next kill lands is the uninterrupted
    run's so far: the same run, the first rows and values, none twice or changed. The last
    resume completes the job. The kill after the last CSV row also leaves that row torn, as a
    kill in mid-write would: the resume rebuilds the CSV from the checkpoint."""
    _, rows, record = classical_reference
    for point, rows_in_csv, rounds_in_mlflow in KILLS:
        killed = killed_at(folder, point, CLASSICAL_JOB)
        assert killed.returncode == -9, (point, killed.stderr[-2000:])
        (run,) = mlflow_runs(folder)
        now = run_record(folder, run)
        assert_part_of(now, record)
        logged = [step for step, _ in now["metrics"].get("labeled_pool_size", [])]
        assert logged == list(range(1, rounds_in_mlflow + 1)), point
        paths = csv_files(folder)
        assert (csv_rows(paths[0]) if paths else []) == rows[:rows_in_csv], point
        if point.startswith("after_csv"):
            text = paths[0].read_bytes()
            paths[0].write_bytes(text[: len(text) - 40])  # the last row cut in the middle
    resumed = run_cli(folder, *CLASSICAL_JOB, preforked=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = mlflow_runs(folder)
    (path,) = csv_files(folder)
    assert csv_rows(path) == rows and run_record(folder, run) == record


def test_a_network_killed_after_a_checkpoint_resumes_in_a_new_process_to_the_uninterrupted_results(folder, reference):
    """A network's job killed once round 2 is checkpointed: the next process restores the
    network, its optimizer and its random state from the checkpoint and ends with exactly the
    uninterrupted run's CSV and MLflow run."""
    killed = killed_at(folder, "after_checkpoint@2")
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run_cli(folder, *JOB)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming job" in resumed.stdout + resumed.stderr, resumed.stderr[-2000:]
    (run,) = mlflow_runs(folder)
    (path,) = csv_files(folder)
    _, rows, record = reference
    assert csv_rows(path) == rows and run_record(folder, run) == record


def test_a_finished_job_is_skipped_and_resume_false_runs_it_afresh_apart(reference):
    """The same job, ``run_job`` in this process on the reference's store and checkpoints."""
    from al_experiments.app.job import JobContext, run_job

    folder, rows, _ = reference
    (path,) = csv_files(folder)
    before = path.read_bytes()
    cfg = job_config(folder)
    again = run_job(cfg, JobContext())
    assert again["skipped"] and again["csv"] == str(path)
    assert len(mlflow_runs(folder)) == 1 and path.read_bytes() == before

    # resume=false needs a place for its new CSV: the old one is kept, never overwritten.
    cfg.resume, cfg.metrics_dir = False, str(folder / "fresh")
    fresh = run_job(cfg, JobContext())
    assert not fresh.get("skipped") and fresh["run_id"] != again["run_id"]
    runs = mlflow_runs(folder)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert path.read_bytes() == before
    assert csv_rows(next((folder / "fresh").glob("*.csv"))) == rows


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


def test_a_full_disk_fails_clearly_and_the_rerun_resumes_after_space_is_freed(folder, classical_reference,
                                                                              tiny_filesystem):
    """The job's checkpoints on a full disk (a classical job: the failed write and the resume are
    the job's; a compile cache entry that cannot be written has its own test in test_compile_cache)."""
    state = f"state_dir={tiny_filesystem / 'state'}"
    full = run_cli(folder, *CLASSICAL_JOB, state, preforked=True)
    assert full.returncode == 1
    lines = [line for line in full.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "re-run the same command" in lines[0], full.stderr[-2000:]
    (run,) = mlflow_runs(folder)
    assert run.info.status == "FAILED" and "No space left" in run.data.tags["error"]
    assert csv_files(folder) == []  # nothing was written past the last checkpoint

    (tiny_filesystem / "filler").unlink()  # space freed
    resumed = run_cli(folder, *CLASSICAL_JOB, state, preforked=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = mlflow_runs(folder)
    (path,) = csv_files(folder)
    _, rows, record = classical_reference
    assert csv_rows(path) == rows and run_record(folder, run) == record


def _start_server(tmp_path: Path, port: int) -> subprocess.Popen:
    import urllib.request

    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # as scripts/tracking_server.sh runs it
    deadline = time.monotonic() + 120  # a hang guard: the server answering is the event waited for
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    _stop(server)
    pytest.skip("mlflow server did not start within 120 s")


def _stop(server: subprocess.Popen) -> None:
    if server.returncode is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _wait_until_paused(process: _preforked.Popen, log: Path) -> None:
    try:
        process.wait_until_paused()
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {log.read_text()[-3000:]}") from None


def _job_with_server_gone_after_round_2(tmp_path: Path, tmp_path_factory, wait_s: float, log: Path,
                                        extra_env: dict[str, str] | None = None, failpoints: str = ""):
    """A 4-round job logging to a real server that is stopped once round 2 is logged; returns the
    job's process (running on, with ``failpoints`` besides) and the job's command, environment
    and URI."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with_store(tmp_path, tmp_path_factory, "server.db")
    server = _start_server(tmp_path, port)
    # The server is what is under test, not the network: a classical model spares TensorFlow.
    command, env = cli_command(tmp_path, *QUICK_CLASSICAL, "seed=3", "loop.max_rounds=4", f"mlflow.tracking_uri={uri}",
                               f"mlflow.server_wait_s={wait_s:g}", tracking=False)
    env.update(extra_env or {})
    try:  # the server is stopped whatever happens to the job
        with log.open("w") as output:
            process = _preforked.Popen(command, cwd=tmp_path, env={**env, FAILPOINTS: f"after_mlflow@2:pause,{failpoints}"},
                                       stdout=output, stderr=subprocess.STDOUT)
        _wait_until_paused(process, log)
    finally:
        _stop(server)
    process.send_signal(signal.SIGCONT)
    return process, command, env, port


def test_tracking_server_restarting_while_the_job_waits_for_it(tmp_path, tmp_path_factory):
    """The server dies after round 2 of 4 is logged and is started again once round 3's metrics
    found it gone (MLflow's own retries off, so the wait under test is the only one; the job
    stops itself there, so the server comes back while the job waits however fast either is):
    the job waits for it, logs round 3 when it answers, runs round 4 and ends FINISHED, exit 0,
    with every round in the run once and in the CSV once, in one attempt."""
    from mlflow import MlflowClient

    log = tmp_path / "output.txt"
    process, _, _, port = _job_with_server_gone_after_round_2(
        tmp_path, tmp_path_factory, 240, log, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        failpoints="server_unanswered@1:pause")
    uri = f"http://127.0.0.1:{port}"
    server = None
    try:
        _wait_until_paused(process, log)  # round 3's metrics unanswered: the job waits from here
        server = _start_server(tmp_path, port)
        process.send_signal(signal.SIGCONT)
        assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert f"The tracking server at {uri} does not answer" in text and "answers again after" in text, text[-3000:]
        assert "Resuming" not in text and "Error:" not in text, text[-3000:]
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("al-experiments").experiment_id])
        assert run.info.status == "FINISHED"
        for key in ("labeled_pool_size", "test_accuracy", "train_time"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3, 4], key
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if server is not None:
            _stop(server)
    (path,) = csv_files(tmp_path)
    assert len(path.read_text().splitlines()) == 1 + 4


def test_tracking_server_going_away_mid_run_then_coming_back(tmp_path, tmp_path_factory):
    """The server dies while the job is paused after logging round 2 of 4 and does not come back
    within mlflow.server_wait_s, so round 3's results reach the checkpoint and the CSV but not the
    server: one sentence, exit code 1, the CSV keeps the three rounds. With the server back, the
    same command resumes the same run, logs round 3 and runs round 4, and ends FINISHED with every
    round logged once."""
    from mlflow import MlflowClient

    log = tmp_path / "output.txt"
    process, command, env, port = _job_with_server_gone_after_round_2(
        tmp_path, tmp_path_factory, 3, log, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
    uri = f"http://127.0.0.1:{port}"
    try:
        assert process.wait(timeout=300) == 1, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [line for line in log.read_text().splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "The tracking store went away during the job" in lines[0], log.read_text()[-3000:]
    assert "did not come back within mlflow.server_wait_s=3 s" in lines[0]
    (path,) = csv_files(tmp_path)
    assert len(path.read_text().splitlines()) == 1 + 3

    server = _start_server(tmp_path, port)
    try:
        resumed = _preforked.run(command, cwd=tmp_path, env=env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("al-experiments").experiment_id])
        assert run.info.status == "FINISHED"
        for key in ("labeled_pool_size", "test_accuracy"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3, 4], key
        assert len(path.read_text().splitlines()) == 1 + 4
    finally:
        _stop(server)


def test_a_corrupt_meta_file_stops_the_job_before_any_run_and_is_left_alone(folder):
    """``run_job`` in this process: the refusal is the job's, one sentence, before any run."""
    from conftest import compose_config, in_folder

    from al_experiments.app.errors import StorageError
    from al_experiments.app.job import JobContext, run_job

    metrics = folder / "old-metrics"
    metrics.mkdir()
    (metrics / ".meta.json").write_text('{"dataset": {"name": "digits"')  # truncated JSON
    cfg = in_folder(compose_config(*JOB), folder)
    cfg.metrics_dir = str(metrics)
    with pytest.raises(StorageError, match=r"\.meta\.json") as refused:
        run_job(cfg, JobContext())
    assert "\n" not in str(refused.value)
    assert (metrics / ".meta.json").read_text() == '{"dataset": {"name": "digits"'
    assert mlflow_runs(folder) == []
