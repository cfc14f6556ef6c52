"""Real sweeps through hydra/launcher=local (submitit_local: one process per job),
hydra/launcher=pool (joblib's reusable worker processes) and hydra/launcher=slurm (a real
single-node SLURM cluster started by scripts/slurm_cluster.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from _app_helpers import QUICK_CLASSICAL as QUICK, check_sweep, run_cli

from al_experiments.utils.failpoints import ENV as FAILPOINTS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"


def test_local_launcher_sweep_with_parallel_writers(tmp_path):
    """Two jobs in two processes at once write one metrics folder and one SQLite store:
    every round of every job lands once in both, and .meta.json parses at every instant."""
    import json
    import threading

    meta = tmp_path / "sweep" / "metrics" / ".meta.json"
    reads, failures, done = [0], [], threading.Event()

    def read_meta_continuously():
        while not done.is_set():
            try:
                json.loads(meta.read_text())
                reads[0] += 1
            except FileNotFoundError:
                pass
            except ValueError as exc:
                failures.append(str(exc))
            time.sleep(0.005)

    reader = threading.Thread(target=read_meta_continuously, daemon=True)
    reader.start()
    start = time.perf_counter()
    try:
        result = run_cli(tmp_path, "-m", "hydra/launcher=local", "hydra.launcher.timeout_min=10",
                         *QUICK, "query=random,bald", "seed=0", timeout=600)
    finally:
        done.set()
        reader.join()
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_sweep(tmp_path, jobs=2)
    # each job ran in its own process: submitit's folder holds one log per job
    assert len(list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))) == 2
    assert failures == [] and reads[0] > 0
    print(f"local launcher, 2-job sweep: {elapsed:.1f} s, .meta.json read {reads[0]} times")


def test_pool_launcher_runs_the_jobs_in_reused_worker_processes(tmp_path):
    """Four jobs in two worker processes: each worker runs job after job (the run's ``process``
    tag names where it ran), and the sweep's results land as the other launchers' do."""
    result = run_cli(tmp_path, "-m", "hydra/launcher=pool", "hydra.launcher.workers=2", *QUICK,
                     "query=random,bald", "seed=0,1", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    _, children = check_sweep(tmp_path, jobs=4)
    processes = [run.data.tags["process"] for run in children]
    assert len(set(processes)) < 4, processes  # some worker ran more than one job


def test_pool_launcher_refuses_a_worker_count_before_anything_is_made(tmp_path):
    result = run_cli(tmp_path, "-m", "hydra/launcher=pool", "hydra.launcher.workers=0", *QUICK)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: hydra.launcher.workers=0 is invalid: give a whole number >= 1, "
                                     "or null for one worker per core.")
    assert list(tmp_path.iterdir()) == []  # no sweep folder, store or run


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while read
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_pool_workers_stop_their_job_and_exit_when_the_sweep_process_dies(tmp_path):
    """SIGKILL to al-run, which nothing can clean up after: each worker stops the job it holds
    as a SIGTERM stops one (the run recorded KILLED, not left RUNNING) and exits, and the re-run
    of the command resumes the jobs after their last checkpointed round."""
    from _app_helpers import checkpointed_rounds, cli_command, mlflow_runs

    sweep = ["-m", "hydra/launcher=pool", "hydra.launcher.workers=2", *QUICK, "loop.max_rounds=3", "seed=4",
             "query=random,bald"]
    command, env = cli_command(tmp_path, *sweep)
    env[FAILPOINTS] = "after_checkpoint@2:wait"  # the job holds there until a signal ends it
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 240  # a hang guard only
    while sorted(checkpointed_rounds(tmp_path / ".al-state")) != [2, 2]:  # both jobs hold at their point
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the job never reached round 2: {process.communicate()[1][-3000:]}")
        time.sleep(0.2)
    workers = _children(process.pid)
    assert workers
    process.kill()
    process.communicate()
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the sweep"
    jobs = [run for run in mlflow_runs(tmp_path) if run.data.tags.get("run_kind") != "sweep"]
    assert [run.info.status for run in jobs] == ["KILLED", "KILLED"]

    result = run_cli(tmp_path, *sweep, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("Resuming job") + result.stdout.count("Resuming job") == 2
    check_sweep(tmp_path, jobs=2, rounds=3)


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the single-node cluster (root + apt needed); skip, saying why, if it cannot start."""
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM cluster needs root (apt-get, daemons as root)")
    if shutil.which("apt-get") is None:
        pytest.skip("the single-node SLURM cluster needs apt-get to install Debian's slurm packages")
    running = subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True, text=True).returncode == 0
    up = subprocess.run(["bash", str(CLUSTER), "up"], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        pytest.skip(f"scripts/slurm_cluster.sh up failed (rc {up.returncode}): {up.stderr.strip()[-500:]}")
    yield
    if not running:  # a cluster that ran before (maybe for someone else) is left running
        subprocess.run(["bash", str(CLUSTER), "down"], capture_output=True, text=True, timeout=300)


def _start_once_requeued(job_id: str, process: subprocess.Popen, deadline: float) -> None:
    """SLURM holds a requeued job until its begin time, AuthInfo's cred_expire later (10 s on
    this cluster); once the job waits for it, it is allowed to start now, as an administrator
    may (scontrol update StartTime). The requeue and the resume are what is under test."""
    left_running = False
    while process.poll() is None and time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True,
                               text=True).stdout.split()
        if state == ["PENDING", "BeginTime"]:
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
            return
        left_running = left_running or state[:1] != ["RUNNING"]
        if left_running and state[:1] == ["RUNNING"]:
            return  # started again already
        time.sleep(0.2)


@pytest.mark.slurm
def test_slurm_preemption_requeues_and_the_job_resumes(slurm_cluster, tmp_path):
    """USR2 (what SLURM sends at preemption or before the time limit) in the middle of a job:
    submitit requeues it and the requeued job continues after its last checkpointed round,
    writing what the first attempt had not (its CSV row and MLflow metrics)."""
    import re

    from _app_helpers import cli_command, csv_files, metric_history, mlflow_runs, rounds_checkpointed

    rounds = 3
    command, env = cli_command(tmp_path, "-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=10",
                               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", *QUICK,
                               f"loop.max_rounds={rounds}", "seed=4")
    # The first attempt holds once round 2 is checkpointed, so the signal finds it there however
    # fast the machine; the requeued attempt starts after round 2 and never reaches the point.
    env[FAILPOINTS] = "after_checkpoint@2:wait"
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240  # a hang guard only: the checkpoint is the event waited for
    while rounds_checkpointed(tmp_path / ".al-state") < 2:
        assert process.poll() is None and time.monotonic() < deadline, "the job never reached round 2"
        time.sleep(0.2)
    # submitit names its folder for the job after the SLURM job id: this job, not anyone else's
    (job_id,) = [p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.is_dir()]
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    _start_once_requeued(job_id, process, deadline)
    _, stderr = process.communicate(timeout=400)
    assert process.returncode == 0, stderr[-3000:]

    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    # (the requeued attempt's log replaces the first one's, so the signal itself is not in it)
    resumed = re.search(r"Resuming job \w+ after round (\d+) of", logs)
    assert resumed and int(resumed.group(1)) == 2, logs[-3000:]
    (job,) = [r for r in mlflow_runs(tmp_path) if r.data.tags.get("run_kind") != "sweep"]
    assert job.info.status == "FINISHED"
    # every round once, in MLflow and in the CSV, across the two attempts
    assert [step for step, _ in metric_history(tmp_path, job.info.run_id, "labeled_pool_size")] == list(range(1, rounds + 1))
    (csv,) = csv_files(tmp_path)
    assert len(csv.read_text().splitlines()) == rounds + 1


@pytest.mark.slurm
def test_slurm_sweep_into_the_postgresql_server_survives_a_restart(slurm_cluster, tracking_server, tmp_path):
    """The SLURM launcher's sweep, as benchmarks/slurm_sweep_restart.py runs it in small: 2 jobs
    (random and BALD; classical: the launcher and the server are under test) through SLURM into the
    PostgreSQL-backed server, restarted when half of the rounds are in; then, run by run against
    the CSVs, every round once in the store with the CSV's values, every run FINISHED under one
    parent, and each job run by SLURM."""
    import sys

    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "slurm_sweep_restart.py"), "--jobs", "2", "--rounds", "3",
         "--classical", "--folder", str(tmp_path)], env=tracking_server.env, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "al-run exit 0; 0 problems" in result.stdout and "rounds in)" in result.stdout, result.stdout
    # the jobs really went through SLURM: submitit names each task's folder <array job id>_<task>
    tasks = sorted(p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert len(tasks) == 2 and all(part.isdigit() for name in tasks for part in name.split("_")), tasks
    print(result.stdout.strip())
