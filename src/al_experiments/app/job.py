"""One job: validate everything -> build -> run the loop -> sinks -> summary.

``run_job(cfg)`` is a plain function (the Hydra entry point only calls it), so tests and
scripts can run a job from a composed config. Nothing is written to the tracking store or the
metrics directory until every check has passed.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from al_experiments.app.build import build, uses_keras
from al_experiments.app.schema import validate
from al_experiments.app.sinks import JobContext, JobSinks
from al_experiments.utils.compile_cache import use_compile_cache

__all__ = ["JobContext", "round_line", "run_job", "summarize"]

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig, ctx: JobContext | None = None, job: Any = None) -> dict[str, Any]:
    """Run one active-learning job described by ``cfg``; return its summary.

    With ``resume`` (the default) a job that finished before is skipped and one that was
    interrupted continues after its last completed round, into the same MLflow run and CSV.
    ``ctx``: where the job stands in a Hydra run or sweep (by default Hydra's, or none).
    ``job``: the objects to run (a ``build.Job``) instead of those ``cfg`` builds; everything
    else, the checks, the sinks and the resume, is the same (the tracking load test runs a
    stub model this way).

    Raises:
        AppError: a config value, dataset file, tracking store or checkpoint that cannot work;
            raised before an MLflow run or a metrics file is written.
    """
    ctx = ctx or JobContext.from_hydra()
    validate(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    sinks = JobSinks(cfg, resolved, ctx)  # checks the store and the folders; writes nothing
    if job is None:
        if uses_keras(cfg):  # a classical model's job never loads TensorFlow
            _prepare_tensorflow(cfg)
        job = build(cfg)
    with sinks.opened(job):
        finished_before = sinks.resume()
        if finished_before is not None:
            return finished_before
        sinks.start()
        for step in job.loop.rounds():
            sinks.publish(step)
            log.info("%s", round_line(step, len(job.loop)))
        return sinks.finish(summarize(job.loop.history))


def summarize(history: list[dict[str, Any]]) -> dict[str, float]:
    """Final test accuracy, area under the learning curve and total seconds per phase.

    The area is normalised by the labelled-size range, so it is a mean accuracy comparable
    across runs of different lengths (a single round gives its accuracy).
    """
    from al_experiments.report.stats import aulc  # the report's statistics load scipy.stats: on use

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


def _prepare_tensorflow(cfg: DictConfig) -> None:
    """What must be set before TensorFlow loads: the compile cache the jobs of a sweep share;
    under SLURM, only the CPUs SLURM gave the job (TF would otherwise start one thread per core)."""
    use_compile_cache(cfg.compile_cache)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if not cpus:
        return
    from al_experiments.utils.quiet_tensorflow import import_tensorflow  # TensorFlow only where SLURM limits the CPUs

    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(cpus))
        tf.config.threading.set_inter_op_parallelism_threads(min(int(cpus), 2))
    except RuntimeError:
        pass  # TF already initialised (an earlier job in this process): keep its setting


def round_line(step: dict[str, Any], rounds: int) -> str:
    """``round 3/10: 40 labels, test accuracy 0.812, 1.4 s``."""
    parts = [f"round {int(step['iteration'])}/{rounds}: {int(step['labeled_pool_size'])} labels"]
    accuracy = _accuracy(step.get("eval"))
    if accuracy is not None:
        parts.append(f"test accuracy {accuracy:.3f}")
    seconds = sum(step.get(f"{phase}_time") or 0.0 for phase in ("train", "query", "optim", "eval"))
    parts.append(f"{seconds:.2f} s")
    return ", ".join(parts)
