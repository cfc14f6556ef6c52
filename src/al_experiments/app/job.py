"""One job: validate everything -> build -> run the loop -> sinks -> summary.

``run_job(cfg)`` is a plain function (the Hydra entry point only calls it), so tests and
scripts can run a job from a composed config. Nothing is written to the tracking store or the
metrics directory until every check has passed.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from al_experiments.app.errors import ConfigError, StorageError, TrackingError
from al_experiments.app.run_names import (
    git_commit,
    job_description,
    job_run_name,
    progress_line,
    setting_label,
    varying_keys,
)
from al_experiments.app.schema import validate
from al_experiments.data.task import TASKS_FOLDER
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
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

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
        from al_experiments.tracking.sweep import sweep_metrics_dir

        announced = sweep_metrics_dir(ctx.sweep_dir)  # a resumed sweep keeps its first folder
        if announced:
            return announced
    base = ctx.sweep_dir or ctx.output_dir or os.getcwd()
    return os.path.abspath(os.path.join(base, "metrics"))


def summarize(history: list[dict[str, Any]]) -> dict[str, float]:
    """Final test accuracy, area under the learning curve and total seconds per phase.

    The area is normalised by the labelled-size range, so it is a mean accuracy comparable
    across runs of different lengths (a single round gives its accuracy).
    """
    from al_experiments.report.stats import aulc

    summary: dict[str, float] = {"rounds": float(len(history))}
    accuracy = [_accuracy(step.get("eval")) for step in history]
    if history and all(a is not None for a in accuracy):
        summary["final_accuracy"] = float(accuracy[-1])
        summary["aulc"] = aulc([step["labeled_pool_size"] for step in history], accuracy)
    for phase in ("train", "query", "optim", "eval"):
        times = [step.get(f"{phase}_time") for step in history]
        summary[f"{phase}_seconds"] = float(sum(t for t in times if t is not None))
    return summary


def _accuracy(evaluation: dict[str, float] | None) -> float | None:
    for key, value in (evaluation or {}).items():
        if key.endswith("accuracy"):
            return float(value)
    return None


def _limit_threads() -> None:
    """Use only the CPUs SLURM gave the job; TF would otherwise start one thread per core."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if not cpus:
        return
    from al_experiments.utils.quiet_tensorflow import import_tensorflow

    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(cpus))
        tf.config.threading.set_inter_op_parallelism_threads(min(int(cpus), 2))
    except RuntimeError:
        pass  # TF already initialised (an earlier job in this process): keep its setting


def run_job(cfg: DictConfig, ctx: JobContext | None = None, job: Any = None) -> dict[str, Any]:
    """Run one active-learning job described by ``cfg``; return its summary.

    With ``resume`` (the default) a job that finished before is skipped and one that was
    interrupted continues after its last completed round, into the same MLflow run and CSV.
    ``job``: the objects to run (a ``build.Job``) instead of those ``cfg`` builds; everything
    else, the checks, the sinks and the resume, is the same (the tracking load test runs a
    stub model this way).

    Raises:
        AppError: a config value, dataset file, tracking store or checkpoint that cannot work;
            raised before an MLflow run or a metrics file is written.
    """
    from al_experiments.app.build import build
    from al_experiments.resume import CheckpointStore, job_identity
    from al_experiments.resume.checkpoint import JobAlreadyRunning
    from al_experiments.tracking import mlflow_store, server_wait

    ctx = ctx or JobContext.from_hydra()
    # ---- checks: nothing is written before all of them pass
    validate(cfg)
    uri = mlflow_store.resolve_tracking_uri(cfg.mlflow.tracking_uri)
    waiting = server_wait.ServerWait(uri, cfg.mlflow.server_wait_s)  # this job's, shared by its clients
    try:
        mlflow_store.wait_for_tracking_store(uri, cfg.mlflow.timeout_s, waiting)
    except mlflow_store.TrackingUnavailable as exc:
        raise TrackingError(str(exc)) from None
    metrics_dir = metrics_dir_for(cfg, ctx)  # a fresh job's; a resumed one keeps its own
    for folder in (metrics_dir, os.path.abspath(cfg.state_dir)):
        _check_writable(folder)
    if job is None:
        _limit_threads()
        job = build(cfg)
    identity = job_identity(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    store = CheckpointStore(os.path.abspath(cfg.state_dir))
    try:
        experiment_id = mlflow_store.ensure_experiment(uri, cfg.mlflow.experiment_name, waiting)
        with store.claim(identity):
            checkpoint = _checkpoint_to_resume(cfg, store, identity, uri, experiment_id, waiting)
            if checkpoint is not None and checkpoint.finished:
                log.info("Job %s finished before (MLflow run %s); skipping it (resume=false runs it again).",
                         identity, checkpoint.run_id)
                return {**checkpoint.summary, "run_id": checkpoint.run_id, "experiment": checkpoint.experiment,
                        "csv": os.path.join(checkpoint.metrics_dir, checkpoint.experiment + ".csv"),
                        "skipped": True}
            try:
                return _run(cfg, ctx, job, store, identity, checkpoint, uri, experiment_id, metrics_dir, waiting)
            except Exception as exc:
                _raise_if_store_went_away(exc, uri, cfg.mlflow.timeout_s, waiting)
                raise
    except mlflow_store.TrackingUnavailable as exc:
        raise TrackingError(str(exc)) from None
    except JobAlreadyRunning as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        raise _storage_error(exc.filename or "the results", exc.strerror) from None


def _storage_error(path: str, reason: str) -> StorageError:
    return StorageError(
        f"Cannot write {path}: {reason}; free space or fix the folder (metrics_dir, state_dir, the "
        "MLflow store), then re-run the same command: the job resumes after its last completed round."
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


def _raise_if_store_went_away(exc: Exception, uri: str, timeout_s: float, waiting: Any) -> None:
    """An MLflow call failed mid-job: if the store is unreachable now, say so in one sentence."""
    from mlflow.exceptions import MlflowException

    from al_experiments.tracking import mlflow_store

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


def _checkpoint_to_resume(cfg: DictConfig, store: Any, identity: str, uri: str, experiment_id: str,
                          waiting: Any) -> Any:
    """The job's checkpoint if it should be resumed (or skipped), else None (start afresh)."""
    from al_experiments.resume import CorruptCheckpoint

    if not cfg.resume:
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
    if (checkpoint.tracking_uri, checkpoint.experiment_id) != (uri, experiment_id) or not _run_exists(uri, checkpoint.run_id, waiting):
        log.warning("Job %s has a checkpoint for another MLflow store, experiment or a deleted run; "
                    "starting afresh.", identity)
        store.discard(identity)
        return None
    return checkpoint


def _run_exists(uri: str, run_id: str, waiting: Any) -> bool:
    from mlflow.exceptions import MlflowException

    from al_experiments.tracking import mlflow_store

    try:
        return mlflow_store.client(uri, waiting).get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _run(cfg: DictConfig, ctx: JobContext, job: Any, store: Any, identity: str, checkpoint: Any,
         uri: str, experiment_id: str, metrics_dir: str, waiting: Any) -> dict[str, Any]:
    """The job proper, fresh or resumed: sinks, rounds, summary. ``metrics_dir`` is where a fresh
    job writes its CSV; a resumed one continues in its checkpoint's folder. ``waiting``: the
    job's ``server_wait.ServerWait``, given to every MLflow client it makes."""
    import al_experiments
    from al_experiments.resume import Checkpoint
    from al_experiments.tracking import mlflow_run, mlflow_store, sweep
    from al_experiments.tracking.suit_metrics import ExperimentSuitMetrics
    from al_experiments.utils.background import BackgroundTask

    loop, info = job.loop, job.data_info
    model_name, query_name = loop.get_model_name(), loop.get_query_fn_name()
    if checkpoint is not None:
        experiment, metrics_dir = checkpoint.experiment, checkpoint.metrics_dir
        try:
            loop.restore({**checkpoint.loop, "model": store.load_model_state(checkpoint)})
        except ValueError as exc:
            raise ConfigError(f"{exc} (checkpoint {store.folder(identity)})") from None
        log.info("Resuming job %s after round %d of %d (MLflow run %s).", identity, loop.i, len(loop),
                 checkpoint.run_id)
    else:
        experiment = f"{ctx.job_num}_{cfg.seed}_{model_name}_{query_name}"  # tf_al's <run>_<seed>_<model>_<query>
    csv_path = os.path.join(metrics_dir, experiment + ".csv")
    if checkpoint is None and os.path.exists(csv_path):
        raise ConfigError(
            f"The metrics file {csv_path} already exists; choose another metrics_dir "
            "(or hydra.run.dir / hydra.sweep.dir) or delete the old file."
        )

    # ---- sinks
    from al_experiments.app.build import task_file

    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    setting = setting_label(resolved)
    task_path = os.path.join(metrics_dir, TASKS_FOLDER, task_file(cfg))
    if not os.path.exists(task_path):  # jobs of one task (strategies of a seed) share the file
        job.task.save(task_path)
    parent = sweep.parent_run_for(ctx.sweep_dir, uri, experiment_id, waiting) if ctx.sweep_dir else None
    _end_orphaned_runs(uri, experiment_id, identity, waiting, keep=checkpoint.run_id if checkpoint else None)
    try:
        suit = ExperimentSuitMetrics(metrics_dir)
        suit.add_dataset_meta(info.name, info.path, info.train_size, info.test_size or None, info.val_size or None,
                              content_hash=info.content_hash or None)
        suit.add_experiment_meta(experiment, model_name, query_name,
                                 {**loop.collect_meta_params(), "setting": setting, "task_hash": info.task_hash})
    except ValueError as exc:  # a damaged .meta.json: left alone, the message says what to do
        raise StorageError(str(exc)) from None

    tags = {
        "query": query_name, "samples": loop.query_fn.samples_used(loop.model), "setting": setting,
        "model": cfg.model.name, "dataset": cfg.dataset.name,
        "seed": str(cfg.seed), "sweep": os.path.abspath(ctx.sweep_dir) if ctx.sweep_dir else "",
        "experiment_file": experiment, "job_identity": identity, **{str(k): str(v) for k, v in cfg.tags.items()},
    }
    tags.update(_source_tags())
    varying = set()
    if ctx.sweep_dir:
        varying = varying_keys(sweep.swept_params(ctx.sweep_dir))
        log.info("%s", progress_line(ctx.job_num, *sweep.sweep_progress(ctx.sweep_dir)))
    run_name = cfg.run_name or job_run_name(query_name, cfg.seed, ctx.overrides, varying)
    params = mlflow_run.flatten(resolved)
    # data.path is where the loader actually read (the config may hold an interpolation or none)
    params.update({f"data.{k}": v for k, v in asdict(info).items() if k != "name"})
    params["al_experiments.version"] = al_experiments.__version__

    with mlflow_run.JobRun(uri, experiment_id, run_name, tags, parent_run_id=parent,
                            resume_run_id=checkpoint.run_id if checkpoint else None, wait=waiting) as run:
        if checkpoint is None:
            # Written as soon as the run exists: from here on, a kill resumes into this run.
            checkpoint = Checkpoint(identity=identity, run_id=run.run_id, tracking_uri=uri,
                                    experiment_id=experiment_id, metrics_dir=metrics_dir, experiment=experiment,
                                    loop=_loop_state(loop)[0])
            store.save(checkpoint)
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
            suit.rewrite(experiment, loop.history)
            run.log_missing_rounds(loop.history)
        run.add_json("config/resolved.json", resolved)
        if ctx.output_dir and os.path.isdir(os.path.join(ctx.output_dir, ".hydra")):
            run.add_artifact(os.path.join(ctx.output_dir, ".hydra"), "config/.hydra")
        run.add_artifact(csv_path, "metrics")
        run.add_artifact(task_path, "task")
        run.add_json("indices_selected.json", _selections(loop))
        # The checkpoint defines a completed round, so it is written here; the round's CSV line
        # and MLflow metrics follow it on a worker thread while the next round computes (a
        # resume rewrites both from the checkpoint, whatever a kill left of them).
        with BackgroundTask() as publishing:
            for step in loop.rounds():
                round_index = int(step["iteration"])
                failpoint("before_checkpoint", round_index)
                publishing.wait()
                checkpoint.loop, model_state = _loop_state(loop)
                store.save(checkpoint, model_state)
                failpoint("after_checkpoint", round_index)
                publishing.submit(functools.partial(_publish_round, suit, run, experiment, step))
                run.add_json("indices_selected.json", _selections(loop))
                log.info("%s", round_line(step, len(loop)))
        summary = summarize(loop.history)
        # The two results a comparison sorts by; the rest is in the description, not a wall
        # of one-point charts.
        labels = loop.history[-1]["labeled_pool_size"] if loop.history else None
        description = job_description(query_name, cfg.dataset.name, cfg.seed, summary, labels)
        run.log_results({key: summary[name] for key, name in _RESULT_METRICS if name in summary}, description)
    failpoint("after_run_finished")
    checkpoint.finished, checkpoint.summary = True, summary
    store.save(checkpoint)
    log.info("finished %s", description)
    log.info("MLflow run %s, CSV %s", mlflow_store.runs_page(uri, experiment_id, run.run_id), csv_path)
    return {**summary, "run_id": run.run_id, "csv": csv_path, "experiment": experiment}


_RESULT_METRICS = (("final_test_accuracy", "final_accuracy"), ("aulc", "aulc"))


def _publish_round(suit: Any, run: Any, experiment: str, step: dict[str, Any]) -> None:
    """A checkpointed round's CSV line, then its MLflow metrics."""
    round_index = int(step["iteration"])
    suit.write_line(experiment, step)
    failpoint("after_csv", round_index)
    run.log_round(step)
    failpoint("after_mlflow", round_index)


def round_line(step: dict[str, Any], rounds: int) -> str:
    """``round 3/10: 40 labels, test accuracy 0.812, 1.4 s``."""
    parts = [f"round {int(step['iteration'])}/{rounds}: {int(step['labeled_pool_size'])} labels"]
    accuracy = _accuracy(step.get("eval"))
    if accuracy is not None:
        parts.append(f"test accuracy {accuracy:.3f}")
    seconds = sum(step.get(f"{phase}_time") or 0.0 for phase in ("train", "query", "optim", "eval"))
    parts.append(f"{seconds:.2f} s")
    return ", ".join(parts)


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


def _end_orphaned_runs(uri: str, experiment_id: str, identity: str, waiting: Any, keep: str | None) -> None:
    """Runs of this job still RUNNING belong to an attempt that died (this process holds the
    job's lock): record them as KILLED rather than leave them running for ever."""
    from al_experiments.tracking import mlflow_store

    client = mlflow_store.client(uri, waiting)
    for run in client.search_runs([experiment_id], f"tags.job_identity = '{identity}' and attributes.status = 'RUNNING'"):
        if run.info.run_id != keep:
            client.set_terminated(run.info.run_id, status="KILLED")
