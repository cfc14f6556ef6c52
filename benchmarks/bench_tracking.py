"""Load test of a shared tracking server: N jobs logging at once, then the same through two restarts.

Each client is a process that runs a real job (``run_job``: the checks, the checkpoint, the CSV,
the MLflow run, the background publishing, the resume machinery) whose model is a stub that
neither trains nor predicts, so only tracking is measured. Two paces:
- back to back (``--clients``): rounds follow each other as fast as the sinks allow, which
  finds the server's limit; every client waits its turn, so latency is about N / throughput;
- paced (``--paced``): the stub sleeps ``--round-s`` per round (default 4.5 s, what a round of
  Gal et al.'s CNN protocol takes on this kind of machine), and the jobs start spread over one
  round, as a sweep's do.
Reported per phase:
- rounds logged per second, over the whole phase;
- the latency of a round's logging (``JobRun.log_round``: one ``log_batch``), median and p99;
- the server's CPU (cores busy on average) and peak memory (PSS of the tracking server's
  processes and of PostgreSQL's);
- the check: every metric of every round in the store exactly once, one run per job, FINISHED.

The restart phase stops the tracking server twice while the jobs run: once with SIGTERM (a
deliberate restart), once with SIGKILL (a crash), each time starting it again at once.

    python benchmarks/bench_tracking.py                      # starts scripts/tracking_server.sh's server
    python benchmarks/bench_tracking.py --clients 8 --rounds 20 --uri http://127.0.0.1:5050
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from tracking_server_control import csv_rounds, running_server, server, server_status

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- the stub job
class StubModel:
    """Trains and predicts nothing: a round costs only what the job's sinks cost."""

    def __init__(self, round_s: float = 0.0) -> None:
        self.round_s = round_s

    def reset(self, pool: Any, dataset: Any, round_index: int | None = None) -> None:
        pass

    def fit(self, inputs: Any, targets: Any, **kwargs: Any) -> dict[str, list[float]]:
        if self.round_s:
            time.sleep(self.round_s)
        return {"loss": [0.5], "accuracy": [0.75 + 0.001 * len(inputs)]}

    def evaluate(self, inputs: Any, targets: Any, **kwargs: Any) -> dict[str, float]:
        return {"loss": 0.4, "accuracy": 0.8}


def stub_job(cfg: Any, round_s: float) -> Any:
    """A ``build.Job`` over synthetic data with the stub model and random queries."""
    from al_experiments.acquisition import AcquisitionFunction
    from al_experiments.app.build import DataInfo, Job
    from al_experiments.dataset import Dataset
    from al_experiments.data.task import Task
    from al_experiments.loop import ActiveLearningLoop

    rng = np.random.default_rng(int(cfg.seed))
    pool_size = int(cfg.loop.init_size) + int(cfg.loop.step_size) * int(cfg.loop.max_rounds) + 10
    x = rng.normal(size=(pool_size, 4)).astype("float32")
    y = np.arange(pool_size) % 2
    dataset = Dataset(x, y, test=(x[:50], y[:50]), init_size=int(cfg.loop.init_size))
    info = DataInfo(name="stub", path="", train_size=pool_size, test_size=50, val_size=0, num_classes=2,
                    input_shape=(4,), content_hash="stub")
    model, query = StubModel(round_s), AcquisitionFunction("random")
    loop = ActiveLearningLoop(model, dataset, query, step_size=int(cfg.loop.step_size),
                              max_rounds=int(cfg.loop.max_rounds), seed=int(cfg.seed))
    task = Task(source_hash="stub", split_seed=int(cfg.seed), pool=np.arange(pool_size), pool_labels=y,
                test=np.arange(50), test_labels=y[:50], init=np.asarray(loop.initial_indices))
    return Job(dataset=dataset, data_info=info, task=task, model=model, query=query, loop=loop)


def client(cfg: Any, job_num: int, round_s: float, out: str, start: Any) -> None:
    """One job, its rounds' logging timed; the times go to ``out`` as JSON."""
    import logging

    from al_experiments.app.job import JobContext, run_job
    from al_experiments.tracking.mlflow_run import JobRun

    logging.basicConfig(level=logging.WARNING, format=f"[client {job_num}] %(message)s")
    times: list[tuple[float, float]] = []
    log_round = JobRun.log_round

    def timed(self: JobRun, step: Any) -> None:
        began = time.perf_counter()
        log_round(self, step)
        times.append((time.time(), time.perf_counter() - began))

    JobRun.log_round = timed  # measurement only: the call itself is the job's own
    start.wait()
    if round_s:  # paced jobs start spread over one round, as a sweep's jobs do
        time.sleep(np.random.default_rng(job_num).uniform(0, round_s))
    began = time.time()
    summary = run_job(cfg, JobContext(job_num=job_num), job=stub_job(cfg, round_s))
    Path(out).write_text(json.dumps({"began": began, "ended": time.time(), "rounds": times,
                                     "run_id": summary["run_id"]}))


# ----------------------------------------------------------------------------- the server
def server_pids(tracking_dir: Path) -> list[int]:
    """The tracking server's processes (its session) and PostgreSQL's (the postmaster's children)."""
    roots: set[int] = set()
    for name in ("mlflow-server.pid", "postgres/postmaster.pid"):
        try:
            roots.add(int((tracking_dir / name).read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, session = int(entry.name), int(fields[1]), int(fields[3])
        if pid in roots or ppid in roots or session in roots:
            pids.append(pid)
    return pids


class ServerMeter:
    """Samples the server's CPU seconds and PSS twice a second while a phase runs."""

    def __init__(self, tracking_dir: Path) -> None:
        self.tracking_dir = tracking_dir
        self.cpu: dict[int, float] = {}  # pid -> last CPU seconds seen (a restarted process is a new pid)
        self.base: dict[int, float] = {}
        self.peak_pss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, first: bool = False) -> None:
        total_pss = 0.0
        for pid in server_pids(self.tracking_dir):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            # a process of the first sample counts from then on, a later one (a restart) from its start
            self.base.setdefault(pid, seconds if first else 0.0)
            self.cpu[pid] = seconds
            total_pss += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")) / 1024
        self.peak_pss_mb = max(self.peak_pss_mb, total_pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.5)

    def __enter__(self) -> "ServerMeter":
        self._sample(first=True)
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.time() - self.started
        self.cpu_s = sum(self.cpu[pid] - self.base.get(pid, 0.0) for pid in self.cpu)


# ----------------------------------------------------------------------------- one phase
def compose(uri: str, experiment: str, folder: Path, rounds: int) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from al_experiments.app.schema import register_configs

    register_configs()
    with initialize_config_module("al_experiments.conf", version_base=None):
        return hydra_compose("config", overrides=[
            "query=random", "loop.init_size=10", "loop.step_size=1", f"loop.max_rounds={rounds}",
            f"mlflow.tracking_uri={uri}", f"mlflow.experiment_name={experiment}",
            f"state_dir={folder / 'state'}", f"metrics_dir={folder / 'metrics'}",
        ])


def phase(uri: str, clients: int, rounds: int, round_s: float, folder: Path, tracking_dir: Path | None,
          restarts: int, env: dict[str, str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    experiment = f"load-{clients}-{'restarts' if restarts else 'steady'}-{int(time.time())}"
    base = compose(uri, experiment, folder, rounds)
    context = multiprocessing.get_context("fork")  # the imports are shared, not repeated 128 times
    start = context.Event()
    processes, outputs = [], []
    for number in range(clients):
        cfg = OmegaConf.merge(base, {"seed": number})
        outputs.append(folder / f"client-{number}.json")
        processes.append(context.Process(target=client, args=(cfg, number, round_s, str(outputs[-1]), start)))
    for process in processes:
        process.start()
    restarted: list[str] = []
    meter = ServerMeter(tracking_dir) if tracking_dir else None
    with meter if meter else contextlib.nullcontext():
        began = time.time()
        start.set()
        if restarts:
            # at about a third and two thirds of the rounds (a phase without restarts takes
            # about rounds * clients / rate seconds; the first restart waits for a start)
            for number in range(restarts):
                _wait_for_rounds(folder, clients * rounds * (number + 1) // (restarts + 1), processes)
                how = "restart" if number % 2 == 0 else "kill"
                running = sum(p.is_alive() for p in processes)
                server(how, env)
                answer = ""
                if how == "kill":
                    # what the script says of a server that crashed: PostgreSQL alone is not one
                    answer = f" (status while down: exit {server_status(env)})"
                    server("up", env)
                restarted.append(f"{'SIGTERM' if how == 'restart' else 'SIGKILL'} at {time.time() - began:.1f} s "
                                 f"with {running} clients running{answer}")
        for process in processes:
            process.join()
        wall = time.time() - began
    failed = [n for n, p in enumerate(processes) if p.exitcode != 0]
    results = [json.loads(path.read_text()) for path in outputs if path.exists()]
    latencies = [seconds for result in results for _, seconds in result["rounds"]]
    check = verify(uri, experiment, [r["run_id"] for r in results], rounds)
    figures = {
        "clients": clients, "rounds": rounds, "round_s": round_s, "failed_clients": len(failed),
        "wall_s": wall, "rounds_logged": len(latencies), "rounds_per_s": len(latencies) / wall,
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_p99_s": float(np.percentile(latencies, 99)) if latencies else None,
        "latency_max_s": max(latencies) if latencies else None,
        "restarts": restarted, **check,
    }
    if meter:
        figures.update(server_cpu_cores=meter.cpu_s / meter.seconds, server_peak_pss_mb=meter.peak_pss_mb)
    return figures


def _wait_for_rounds(folder: Path, count: int, processes: list[Any]) -> None:
    """Until the store holds about ``count`` rounds (read off the clients' CSV lines)."""
    while any(p.is_alive() for p in processes) and csv_rounds(folder / "metrics") < count:
        time.sleep(0.2)


def verify(uri: str, experiment: str, run_ids: list[str], rounds: int) -> dict[str, Any]:
    """Every metric of every round once: per run, each round metric's steps are exactly 1..rounds."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    store = MlflowClient(uri)
    experiment_id = store.get_experiment_by_name(experiment).experiment_id
    runs = store.search_runs([experiment_id], max_results=5000)
    deleted = store.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY, max_results=5000)
    missing = duplicated = 0
    keys: set[str] = set()
    for run_id in run_ids:
        run = store.get_run(run_id)
        round_keys = [k for k in run.data.metrics if k not in ("final_test_accuracy", "aulc")]
        keys.update(round_keys)
        for key in round_keys:
            steps = [m.step for m in store.get_metric_history(run_id, key)]
            missing += len(set(range(1, rounds + 1)) - set(steps))
            duplicated += len(steps) - len(set(steps))
    return {
        "runs": len(runs), "runs_finished": sum(r.info.status == "FINISHED" for r in runs),
        "duplicate_runs_removed": len(deleted), "metrics_per_round": len(keys),
        "values_missing": missing, "values_twice": duplicated,
        "exactly_once": missing == 0 and duplicated == 0 and len(runs) == len(run_ids),
    }


# ----------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a running tracking server (default: start scripts/tracking_server.sh's)")
    parser.add_argument("--clients", type=int, nargs="*", default=[8, 32, 128],
                        help="client counts with rounds back to back (no compute: the server's limit)")
    parser.add_argument("--paced", type=int, nargs="*", default=[128],
                        help="client counts with --round-s of compute per round")
    parser.add_argument("--round-s", type=float, default=4.5,
                        help="compute per round of the paced phases (default 4.5: the Gal CNN round here)")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=2, help="server restarts in the second phase (0: none)")
    parser.add_argument("--restarts-only", action="store_true",
                        help="only the phase with restarts (its checks, without the steady phase's figures)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.restarts_only and not args.restarts:
        parser.error("--restarts-only needs --restarts of at least 1")

    env = dict(os.environ)
    tracking_dir = Path(env.get("TRACKING_DIR") or ("/var/lib/al-tracking" if os.geteuid() == 0
                                                     else Path.home() / ".al-tracking"))
    if args.uri:
        return _run(args, args.uri, args.uri == server("uri", env), env, tracking_dir)
    with running_server(env) as uri:
        return _run(args, uri, True, env, tracking_dir)


def _run(args: argparse.Namespace, uri: str, local: bool, env: dict[str, str], tracking_dir: Path) -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as scratch:
        warm_up(uri, Path(scratch) / "warm-up")
        plan = [(clients, 0.0) for clients in args.clients] + [(clients, args.round_s) for clients in args.paced]
        for clients, round_s in plan:
            phases = [0, args.restarts] if args.restarts and local else [0]
            for restarts in (phases[-1:] if args.restarts_only else phases):
                folder = Path(scratch) / f"{clients}-{round_s}-{restarts}"
                folder.mkdir()
                row = phase(uri, clients, args.rounds, round_s, folder, tracking_dir if local else None,
                            restarts, env)
                rows.append(row)
                print(_line(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": _machine(), "rows": rows}, indent=2))
    return 0 if all(row["exactly_once"] and not row["failed_clients"] for row in rows) else 1


def warm_up(uri: str, folder: Path) -> None:
    """One short job in this process, so that the clients fork with everything a job imports
    (MLflow imports much of itself lazily, pandas included) instead of importing it 128 times."""
    from al_experiments.app.job import JobContext, run_job

    cfg = compose(uri, "load-warm-up", folder, 2)
    run_job(cfg, JobContext(), job=stub_job(cfg, 0.0))


def _line(row: dict[str, Any]) -> str:
    server_part = (f", server {row['server_cpu_cores']:.2f} cores, {row['server_peak_pss_mb']:.0f} MB"
                   if "server_cpu_cores" in row else "")
    restarts = f", restarts: {'; '.join(row['restarts'])}" if row["restarts"] else ""
    pace = f", a round every {row['round_s']:g} s" if row["round_s"] else ", back to back"
    return (f"N={row['clients']:>3} x {row['rounds']} rounds{pace}: {row['rounds_per_s']:.0f} rounds/s, logging "
            f"median {row['latency_median_s'] * 1000:.0f} ms, p99 {row['latency_p99_s'] * 1000:.0f} ms, "
            f"max {row['latency_max_s']:.2f} s{server_part}; {row['runs_finished']}/{row['runs']} runs FINISHED, "
            f"{row['values_missing']} values missing, {row['values_twice']} twice, "
            f"{row['duplicate_runs_removed']} duplicate runs removed, failed clients {row['failed_clients']}"
            f"{restarts}")


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} cores, {model}, {time.strftime('%Y-%m-%d')}"


if __name__ == "__main__":
    sys.exit(main())
