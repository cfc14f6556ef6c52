"""Where one job's results go, kept in step: its checkpoint, its tf_al CSV (ExperimentSuitMetrics)
and its MLflow run.

The checkpoint defines a completed round; the CSV line and the MLflow metrics of a round follow
it, so a job killed at any point resumes into the same run and CSV and ends with exactly what an
uninterrupted job writes. ``JobSinks`` is used in this order (``app.job.run_job``)::

    sinks = JobSinks(cfg, resolved, ctx)     # checks only: nothing is written yet
    with sinks.opened(job):                  # the job's lock; store and disk failures in one sentence
        skipped = sinks.resume()             # a finished job's summary, or the loop restored
        sinks.start()                        # the MLflow run, the CSV's metadata, the first checkpoint
        for step in job.loop.rounds():
            sinks.publish(step)              # checkpoint now, CSV line and metrics on a worker thread
        result = sinks.finish(summary)       # the results, the run ended, the checkpoint finished
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import al_experiments
from al_experiments.app.build import task_file
from al_experiments.app.errors import ConfigError, StorageError, TrackingError
from al_experiments.app.run_names import git_commit, job_description, job_run_name, progress_line, setting_label, varying_keys
from al_experiments.data.task import TASKS_FOLDER
from al_experiments.resume import Checkpoint, CheckpointStore, CorruptCheckpoint, job_identity
from al_experiments.resume.checkpoint import JobAlreadyRunning
from al_experiments.tracking import mlflow_run, mlflow_store, server_wait, sweep
from al_experiments.tracking.suit_metrics import ExperimentSuitMetrics
from al_experiments.utils.background import BackgroundTask
from al_experiments.utils.failpoints import failpoint

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Where a job stands in Hydra's world (defaults when run without Hydra)."""

    output_dir: str | None = None  # the job's folder (holds .hydra/)
    sweep_dir: str | None = None  # set in a multirun
    job_num: int = 0  # index in the sweep; 0 for a single run
    overrides: tuple[str, ...] = ()  # the job's command-line overrides (run names)

    @classmethod
    def from_hydra(cls) -> "JobContext":
        if not HydraConfig.initialized():
            return cls()
        hc = HydraConfig.get()
        output_dir = hc.runtime.output_dir if OmegaConf.select(hc, "runtime.output_dir") else None
        overrides = tuple(hc.overrides.task)
        if hc.mode == RunMode.MULTIRUN:
            return cls(output_dir=output_dir, sweep_dir=hc.sweep.dir, job_num=int(hc.job.num), overrides=overrides)
        return cls(output_dir=output_dir, overrides=overrides)


def metrics_dir_for(cfg: DictConfig, ctx: JobContext) -> str:
    """``metrics_dir``, or by default ``<sweep dir>/metrics`` (one folder per sweep, shared by
    its jobs; a resumed sweep's first folder) or ``<run dir>/metrics``."""
    if cfg.metrics_dir:
        return os.path.abspath(cfg.metrics_dir)
    if ctx.sweep_dir:
        announced = sweep.sweep_metrics_dir(ctx.sweep_dir)  # a resumed sweep keeps its first folder
        if announced:
            return announced
    base = ctx.sweep_dir or ctx.output_dir or os.getcwd()
    return os.path.abspath(os.path.join(base, "metrics"))


class JobSinks:
    """The checkpoint, CSV and MLflow run of one job (see the module's docstring for the order)."""

    def __init__(self, cfg: DictConfig, resolved: dict[str, Any], ctx: JobContext) -> None:
        """Check that the results can be written: the tracking store answers (within
        ``mlflow.server_wait_s`` for a server that may be restarting) and the folders can be
        made. Raises AppError; writes nothing."""
        self.cfg, self.resolved, self.ctx = cfg, resolved, ctx
        self.uri = mlflow_store.resolve_tracking_uri(cfg.mlflow.tracking_uri)
        # This job's wait for a restarting server, shared by every MLflow client the job makes.
        self.waiting = server_wait.ServerWait(self.uri, cfg.mlflow.server_wait_s)
        try:
            mlflow_store.wait_for_tracking_store(self.uri, cfg.mlflow.timeout_s, self.waiting)
        except mlflow_store.TrackingUnavailable as exc:
            raise TrackingError(str(exc)) from None
        self.metrics_dir = metrics_dir_for(cfg, ctx)  # a fresh job's; a resumed one keeps its own
        for folder in (self.metrics_dir, os.path.abspath(cfg.state_dir)):
            _check_writable(folder)
        self.identity = job_identity(resolved)
        self.store = CheckpointStore(os.path.abspath(cfg.state_dir))
        self.checkpoint: Checkpoint | None = None
        self.job: Any = None
        self.experiment_id = ""
        self._stack: contextlib.ExitStack | None = None  # the MLflow run and the round writer, once started

    @contextlib.contextmanager
    def opened(self, job: Any) -> Iterator["JobSinks"]:
        """Hold the job's lock (a second process running the same job is refused) while the
        job runs. A failure of the tracking store or of the disk leaves as one sentence
        (AppError), after the MLflow run, if started, has been ended FAILED (KILLED when
        interrupted)."""
        self.job = job
        try:
            self.experiment_id = mlflow_store.ensure_experiment(self.uri, self.cfg.mlflow.experiment_name, self.waiting)
            with self.store.claim(self.identity):
                try:
                    with contextlib.ExitStack() as self._stack:
                        yield self
                except Exception as exc:
                    _raise_if_store_went_away(exc, self.uri, self.cfg.mlflow.timeout_s, self.waiting)
                    raise
        except mlflow_store.TrackingUnavailable as exc:
            raise TrackingError(str(exc)) from None
        except JobAlreadyRunning as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            if exc.errno not in _STORAGE_ERRNOS:
                raise
            raise _storage_error(exc.filename or "the results", exc.strerror) from None

    def resume(self) -> dict[str, Any] | None:
        """The result of a job that finished before (it is skipped); otherwise ``None``, with
        the loop restored to its last checkpointed round if the job was interrupted."""
        self.checkpoint = checkpoint = self._checkpoint_to_resume()
        if checkpoint is None:
            return None
        if checkpoint.finished:
            log.info("Job %s finished before (MLflow run %s); skipping it (resume=false runs it again).",
                     self.identity, checkpoint.run_id)
            return {**checkpoint.summary, "run_id": checkpoint.run_id, "experiment": checkpoint.experiment,
                    "csv": os.path.join(checkpoint.metrics_dir, checkpoint.experiment + ".csv"), "skipped": True}
        loop = self.job.loop
        try:
            loop.restore({**checkpoint.loop, "model": self.store.load_model_state(checkpoint)})
        except ValueError as exc:
            raise ConfigError(f"{exc} (checkpoint {self.store.folder(self.identity)})") from None
        log.info("Resuming job %s after round %d of %d (MLflow run %s).", self.identity, loop.i, len(loop),
                 checkpoint.run_id)
        return None

    def _checkpoint_to_resume(self) -> Checkpoint | None:
        """The job's checkpoint if it should be resumed (or skipped), else None (start afresh)."""
        store, identity = self.store, self.identity
        if not self.cfg.resume:
            if (store.folder(identity) / "checkpoint.json").exists():
                log.info("resume=false: job %s starts afresh; its earlier results stay where they are.", identity)
            store.discard(identity)
            return None
        try:
            checkpoint = store.load(identity)
        except CorruptCheckpoint as exc:
            raise ConfigError(str(exc)) from None
        if checkpoint is None:
            return None
        if (checkpoint.tracking_uri, checkpoint.experiment_id) != (self.uri, self.experiment_id) \
                or not _run_exists(self.uri, checkpoint.run_id, self.waiting):
            log.warning("Job %s has a checkpoint for another MLflow store, experiment or a deleted run; "
                        "starting afresh.", identity)
            store.discard(identity)
            return None
        return checkpoint

    def start(self) -> None:
        """Open the job's MLflow run (or reopen a resumed job's) and its CSV: metadata, task
        file, params, tags, artifacts. A fresh job's first checkpoint is written as soon as its
        run exists; a resumed job's CSV and metrics are rewritten from its checkpoint."""
        cfg, ctx, loop, info = self.cfg, self.ctx, self.job.loop, self.job.data_info
        checkpoint = self.checkpoint
        model_name, query_name = loop.get_model_name(), loop.get_query_fn_name()
        if checkpoint is not None:
            self.experiment, self.metrics_dir = checkpoint.experiment, checkpoint.metrics_dir
        else:
            self.experiment = f"{ctx.job_num}_{cfg.seed}_{model_name}_{query_name}"  # tf_al's <run>_<seed>_<model>_<query>
        self.csv_path = os.path.join(self.metrics_dir, self.experiment + ".csv")
        if checkpoint is None and os.path.exists(self.csv_path):
            raise ConfigError(
                f"The metrics file {self.csv_path} already exists; choose another metrics_dir "
                "(or hydra.run.dir / hydra.sweep.dir) or delete the old file."
            )
        setting = setting_label(self.resolved)
        task_path = os.path.join(self.metrics_dir, TASKS_FOLDER, task_file(cfg))
        if not os.path.exists(task_path):  # jobs of one task (strategies of a seed) share the file
            self.job.task.save(task_path)
        parent = sweep.parent_run_for(ctx.sweep_dir, self.uri, self.experiment_id, self.waiting) if ctx.sweep_dir else None
        _end_orphaned_runs(self.uri, self.experiment_id, self.identity, self.waiting, keep=checkpoint.run_id if checkpoint else None)
        try:
            self.suit = ExperimentSuitMetrics(self.metrics_dir)
            self.suit.add_dataset_meta(info.name, info.path, info.train_size, info.test_size or None,
                                       info.val_size or None, content_hash=info.content_hash or None)
            self.suit.add_experiment_meta(self.experiment, model_name, query_name,
                                          {**loop.collect_meta_params(), "setting": setting, "task_hash": info.task_hash})
        except ValueError as exc:  # a damaged .meta.json: left alone, the message says what to do
            raise StorageError(str(exc)) from None

        tags = {
            "query": query_name, "samples": loop.query_fn.samples_used(loop.model), "setting": setting,
            "model": cfg.model.name, "dataset": cfg.dataset.name,
            "seed": str(cfg.seed), "sweep": os.path.abspath(ctx.sweep_dir) if ctx.sweep_dir else "",
            "experiment_file": self.experiment, "job_identity": self.identity,
            # where the job ran: a pool launcher's worker runs several jobs, SLURM spreads them
            "process": f"{socket.gethostname()}:{os.getpid()}",
            **{str(k): str(v) for k, v in cfg.tags.items()}, **_source_tags(),
        }
        varying = set()
        if ctx.sweep_dir:
            varying = varying_keys(sweep.swept_params(ctx.sweep_dir))
            log.info("%s", progress_line(ctx.job_num, *sweep.sweep_progress(ctx.sweep_dir)))
        run_name = cfg.run_name or job_run_name(query_name, cfg.seed, ctx.overrides, varying)
        params = mlflow_run.flatten(self.resolved)
        # data.path is where the loader actually read (the config may hold an interpolation or none)
        params.update({f"data.{k}": v for k, v in asdict(info).items() if k != "name"})
        params["al_experiments.version"] = al_experiments.__version__

        self.run = run = self._stack.enter_context(mlflow_run.JobRun(
            self.uri, self.experiment_id, run_name, tags, parent_run_id=parent,
            resume_run_id=checkpoint.run_id if checkpoint else None, wait=self.waiting))
        if checkpoint is None:
            # Written as soon as the run exists: from here on, a kill resumes into this run.
            self.checkpoint = Checkpoint(identity=self.identity, run_id=run.run_id, tracking_uri=self.uri,
                                         experiment_id=self.experiment_id, metrics_dir=self.metrics_dir,
                                         experiment=self.experiment, loop=_loop_state(loop)[0])
            self.store.save(self.checkpoint)
            failpoint("after_run_created")
            run.log_params(params)
            run.log_dataset(info.name, info.content_hash, info.path or info.name,
                            schema={"input_shape": list(info.input_shape), "num_classes": info.num_classes},
                            profile={"train": info.train_size, "test": info.test_size, "validation": info.val_size,
                                     "pool_classes": info.pool_classes, "flipped_labels": info.flipped_labels,
                                     "task": info.task_hash})
        else:
            # Whatever the interrupted attempt wrote after its last checkpoint is replaced by
            # the checkpoint's rounds: no row twice, none missing.
            run.log_missing_params(params)
            self.suit.rewrite(self.experiment, loop.history)
            run.log_missing_rounds(loop.history)
        run.add_json("config/resolved.json", self.resolved)
        if ctx.output_dir and os.path.isdir(os.path.join(ctx.output_dir, ".hydra")):
            run.add_artifact(os.path.join(ctx.output_dir, ".hydra"), "config/.hydra")
        run.add_artifact(self.csv_path, "metrics")
        run.add_artifact(task_path, "task")
        run.add_json("indices_selected.json", _selections(loop))
        self._publishing = self._stack.enter_context(BackgroundTask())

    def publish(self, step: dict[str, Any]) -> None:
        """A completed round: its checkpoint now; its CSV line and MLflow metrics on a worker
        thread while the next round computes (a resume rewrites both from the checkpoint,
        whatever a kill left of them)."""
        round_index = int(step["iteration"])
        failpoint("before_checkpoint", round_index)
        self._publishing.wait()
        self.checkpoint.loop, model_state = _loop_state(self.job.loop)
        self.store.save(self.checkpoint, model_state)
        failpoint("after_checkpoint", round_index)
        self._publishing.submit(functools.partial(_publish_round, self.suit, self.run, self.experiment, step))
        self.run.add_json("indices_selected.json", _selections(self.job.loop))

    def finish(self, summary: dict[str, float]) -> dict[str, Any]:
        """Log the job's results, end its run FINISHED and mark its checkpoint finished (a rerun
        skips the job); returns the summary with where the results are."""
        loop, run = self.job.loop, self.run
        self._publishing.wait()  # the last round is in the CSV and the run before the results
        # The two results a comparison sorts by; the rest is in the description, not a wall
        # of one-point charts.
        labels = loop.history[-1]["labeled_pool_size"] if loop.history else None
        description = job_description(loop.get_query_fn_name(), self.cfg.dataset.name, self.cfg.seed, summary, labels)
        run.log_results({key: summary[name] for key, name in _RESULT_METRICS if name in summary}, description)
        self._stack.close()  # the last round's writes, then the run ends FINISHED
        failpoint("after_run_finished")
        self.checkpoint.finished, self.checkpoint.summary = True, summary
        self.store.save(self.checkpoint)
        log.info("finished %s", description)
        log.info("MLflow run %s, CSV %s", mlflow_store.runs_page(self.uri, self.experiment_id, run.run_id), self.csv_path)
        return {**summary, "run_id": run.run_id, "csv": self.csv_path, "experiment": self.experiment}


_RESULT_METRICS = (("final_test_accuracy", "final_accuracy"), ("aulc", "aulc"))


def _publish_round(suit: ExperimentSuitMetrics, run: mlflow_run.JobRun, experiment: str, step: dict[str, Any]) -> None:
    """A checkpointed round's CSV line, then its MLflow metrics."""
    round_index = int(step["iteration"])
    suit.write_line(experiment, step)
    failpoint("after_csv", round_index)
    run.log_round(step)
    failpoint("after_mlflow", round_index)


def _storage_error(path: str, reason: str) -> StorageError:
    return StorageError(
        f"Cannot write {path}: {reason}; free space or fix the folder (metrics_dir, state_dir, "
        "compile_cache, the MLflow store), then re-run the same command: the job resumes after its last "
        "completed round."
    )


def _check_writable(folder: str) -> None:
    """Refuse a results folder that cannot be made before anything is written (the MLflow store
    included): its nearest existing ancestor must be a folder this process may write in."""
    ancestor = folder
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise _storage_error(folder, os.strerror(errno.ENOTDIR))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise _storage_error(folder, os.strerror(errno.EACCES))


# A results folder the user must fix: full, read-only, not permitted, or a file in the way.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                   errno.EEXIST, errno.EISDIR}


def _raise_if_store_went_away(exc: Exception, uri: str, timeout_s: float,
                              waiting: server_wait.ServerWait) -> None:
    """An MLflow call failed mid-job: if the store is unreachable now, say so in one sentence."""
    from mlflow.exceptions import MlflowException  # mlflow is slow to import: only on this failure path

    if not isinstance(exc, MlflowException):
        return
    try:
        mlflow_store.check_tracking_store(uri, timeout_s)
    except mlflow_store.TrackingUnavailable as gone:
        reason = str(gone).split(";")[0].rstrip(".")
        waited = ""
        if mlflow_store.is_server(uri) and waiting.wait_s > 0:
            waited = f" and did not come back within mlflow.server_wait_s={waiting.wait_s:g} s"
        raise TrackingError(
            f"The tracking store went away during the job ({reason}){waited}; its completed rounds are "
            "checkpointed: bring the store back and re-run the same command to resume."
        ) from None


def _run_exists(uri: str, run_id: str, waiting: server_wait.ServerWait) -> bool:
    from mlflow.exceptions import MlflowException  # mlflow is slow to import: only with a checkpoint

    try:
        return mlflow_store.client(uri, waiting).get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _source_tags() -> dict[str, str]:
    """Where the run came from: the command, and the git commit of the working directory."""
    tags = {"mlflow.source.name": "al-run", "mlflow.source.type": "LOCAL"}
    found = git_commit(os.getcwd())
    if found is not None:
        tags["mlflow.source.git.commit"], dirty = found
        tags["git_dirty"] = str(dirty).lower()
    return tags


def _loop_state(loop: Any) -> tuple[dict[str, Any], Any]:
    """The loop's state for the JSON checkpoint, and its model arrays apart."""
    state = loop.state()
    return state, state.pop("model", None)


def _selections(loop: Any) -> dict[str, Any]:
    return {"initial_indices": [int(i) for i in loop.initial_indices],
            "rounds": [{"iteration": s["iteration"], "indices_selected": s["indices_selected"]} for s in loop.history]}


def _end_orphaned_runs(uri: str, experiment_id: str, identity: str, waiting: server_wait.ServerWait,
                       keep: str | None) -> None:
    """Runs of this job still RUNNING belong to an attempt that died (this process holds the
    job's lock): record them as KILLED rather than leave them running for ever."""
    client = mlflow_store.client(uri, waiting)
    for run in client.search_runs([experiment_id], f"tags.job_identity = '{identity}' and attributes.status = 'RUNNING'"):
        if run.info.run_id != keep:
            client.set_terminated(run.info.run_id, status="KILLED")
