"""``hydra/launcher=pool``: the jobs of a sweep in a few long-lived worker processes on this
machine, one per core by default.

A process per job (``hydra/launcher=local``) pays Python's start, TensorFlow's import and the
network's build for every job: seconds, more than a small job's rounds. Here each worker (one of
joblib's reusable loky processes) runs job after job, so it pays them once, and a job that builds
the network its worker's last job built takes it over, as in the basic launcher's one process.
Each job's config is composed in the sweep's process, where the sweeper's check already composed
it, and sent to the worker with the job.

A worker outlives nothing: if the sweep's process dies (SIGKILL, a lost session), each worker
sees it within a second, stops its job as a SIGTERM stops one (the job's run is recorded as
killed and resumes on the next run of the command) and exits. Hydra finds plugins only in the
``hydra_plugins`` package, hence this module.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

# How often a worker looks whether the sweep's process is still its parent, and how long a job
# it stops may take to unwind (record its run, close its files) before the worker exits anyway.
WATCH_INTERVAL_S = 0.5
UNWIND_GRACE_S = 30.0


def workers_problem(workers: Any) -> str | None:
    """The sentence that refuses ``hydra.launcher.workers``, or None for a valid value."""
    if workers is None or (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        return None
    return f"hydra.launcher.workers={workers!r} is invalid: give a whole number >= 1, or null for one worker per core."


class PoolLauncher(Launcher):
    """Runs each batch of jobs in ``workers`` reusable processes (None: one per core; with one,
    or a batch of one job, joblib runs it in the sweep's own process)."""

    def __init__(self, workers: int | None = None) -> None:
        problem = workers_problem(workers)
        if problem:
            raise HydraException(problem)
        self.workers = workers
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from joblib import Parallel, cpu_count, delayed  # joblib is slow to import: loaded on use

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        workers = min(self.workers or cpu_count(), max(len(job_overrides), 1))
        log.info(f"Launching {len(job_overrides)} jobs in {workers} worker processes")
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        state = Singleton.get_state()

        def jobs():  # composed as joblib dispatches them: a large sweep's configs are not all held at once
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(config):
                    config.hydra.job.id = idx
                    config.hydra.job.num = idx
                yield delayed(run_in_worker)(config, self.hydra_context, self.task_function, state, os.getpid())

        return Parallel(n_jobs=workers, backend="loky")(jobs())


def run_in_worker(config: DictConfig, hydra_context: HydraContext, task_function: TaskFunction,
                  singleton_state: dict[Any, Any], sweep_pid: int) -> JobReturn:
    """One job in a worker process, as the basic launcher runs it in its own."""
    in_worker = os.getpid() != sweep_pid  # joblib runs a single worker's jobs in the sweep's own process
    if in_worker:
        _stop_with_the_sweep(sweep_pid)
    setup_globals()
    Singleton.set_state(singleton_state)
    _WATCH.in_job = True
    try:
        result = run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                         job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    finally:
        _WATCH.in_job = False
    if in_worker and not _WATCH.frozen:
        # loky collects garbage between tasks at most once a second; over TensorFlow's and
        # Keras' objects a collection takes 0.3 s, every other job here. What outlives the
        # first job (modules, the kept network) lives as long as the worker, so it is frozen
        # out of later collections, once.
        gc.collect()
        gc.freeze()
        _WATCH.frozen = True
    return result


class _Watch:
    """This worker's state: its watch started, a job running now, its survivors frozen."""
    started = False
    in_job = False
    frozen = False


_WATCH = _Watch()


def _stop_with_the_sweep(sweep_pid: int) -> None:
    """Once per worker: SIGTERM stops a job as a Ctrl-C does (the job records its run as
    killed), and a thread ends the worker when the sweep's process is no longer its parent."""
    if _WATCH.started:
        return
    _WATCH.started = True
    from al_experiments.utils.signals import install_sigterm_as_interrupt

    install_sigterm_as_interrupt()

    def watch() -> None:
        while os.getppid() == sweep_pid:
            time.sleep(WATCH_INTERVAL_S)
        if _WATCH.in_job:
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + UNWIND_GRACE_S
            while _WATCH.in_job and time.monotonic() < deadline:
                time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="sweep-watch", daemon=True).start()
