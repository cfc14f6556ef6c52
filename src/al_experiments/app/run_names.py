"""Names, descriptions and provenance of MLflow runs, from the command line that made them.

A job's name keeps what varies first and short (``bald-s0``, ``bald-epochs=200-s1``), so the
seeds of one strategy stay apart in the UI's narrow name column; a sweep's parent is named
after its swept overrides and the time it started.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from hydra.core.override_parser.overrides_parser import OverridesParser

# Overrides that say where results go or how a job runs, not what it measures.
_NOT_IN_NAMES = ("hydra", "mlflow", "metrics_dir", "run_name", "tags", "resume", "state_dir", "compile_cache", "report")
_VALUE_CHARS = 24


def _key_value(override: str) -> tuple[str, str] | None:
    if "=" not in override:
        return None
    key, value = override.split("=", 1)
    key = key.lstrip("+~")
    if key.split(".")[0].split("/")[0] in _NOT_IN_NAMES:
        return None
    return key, value


def _short(key: str, value: str) -> str:
    value = value if len(value) <= _VALUE_CHARS else value[: _VALUE_CHARS - 1] + "~"
    # A config group choice (query=bald, +experiment=quick) reads as its value alone; a
    # setting (model.fit.epochs=200) keeps its last key part, or the number means nothing.
    return value if "." not in key else f"{key.rsplit('.', 1)[-1]}={value}"


def job_run_name(query: str, seed: int | str, overrides: Iterable[str] = (),
                 varying: Collection[str] = ()) -> str:
    """``<query>[-<overrides that vary across the sweep>]-s<seed>``: the strategy first, the
    seed last; ``varying`` are the keys the sweep varies (see ``varying_keys``)."""
    parts = [query]
    for override in overrides:
        pair = _key_value(override)
        if pair is None or pair[0] in ("seed", "query", "query.name") or pair[0] not in varying:
            continue
        parts.append(_short(*pair))
    return "-".join([*parts, f"s{seed}"])


def varying_keys(swept: Mapping[str, str]) -> set[str]:
    """Keys of a sweep's overrides that take several values (``a,b``, ``range(...)``, ...)."""
    return {key for key, value in swept.items()
            if "," in value or value.startswith(("range(", "choice(", "interval(", "glob("))}


def swept_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """The sweep command's overrides as ``{key: value}`` (``query: "random,bald"``)."""
    swept: dict[str, str] = {}
    for override in overrides:
        pair = _key_value(override)
        if pair is not None:
            swept[pair[0]] = pair[1]
    return swept


def sweep_size(overrides: Sequence[str]) -> int | None:
    """How many jobs the basic sweeper makes of these overrides (None if it cannot tell)."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        size = 1
        for override in parsed:
            if override.is_sweep_override():
                size *= len(list(override.sweep_string_iterator()))
        return size
    except Exception:  # an interval() or a sweeper plug-in's syntax: no estimate, no harm
        return None


def progress_line(job_num: int, total: int | None, elapsed_s: float) -> str:
    """``job 3 of 8, about 1 min 10 s left`` (from the mean time of the jobs before it)."""
    if not total:
        return f"job {job_num + 1}"
    line = f"job {job_num + 1} of {total}"
    if job_num > 0:
        left = elapsed_s / job_num * (total - job_num)
        minutes, seconds = divmod(int(round(left)), 60)
        line += f", about {minutes} min {seconds} s left" if minutes else f", about {seconds} s left"
    return line


def sweep_run_name(overrides: Sequence[str], started: datetime) -> str:
    """``query=random,bald seed=0,1 2026-12-01 14:03``; ``sweep 2026-12-01 14:03`` without overrides."""
    words = [f"{key}={value}" for key, value in swept_overrides(overrides).items()]
    return " ".join([*(words or ["sweep"]), started.strftime("%Y-%m-%d %H:%M")])


def git_commit(folder: str) -> tuple[str, bool] | None:
    """``(commit, has uncommitted changes)`` of the git repository holding ``folder``, if any."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None  # no git here, or it hangs: the tag is a convenience
    return commit.stdout.strip(), bool(status.stdout.strip())


def job_description(query: str, dataset: str, seed: int | str, summary: Mapping[str, float],
                    labels: int | None) -> str:
    """One sentence for the run page: what was run and what came out."""
    if "final_accuracy" not in summary:
        return f"{query} on {dataset}, seed {seed}: {_rounds(summary.get('rounds', 0))}."
    after = f" after {labels} labels" if labels is not None else ""
    seconds = ", ".join(f"{phase} {summary[f'{phase}_seconds']:.1f} s" for phase in ("train", "query", "eval")
                        if f"{phase}_seconds" in summary)
    return (f"{query} on {dataset}, seed {seed}: test accuracy {summary['final_accuracy']:.3f}{after}, "
            f"AULC {summary['aulc']:.3f}, {_rounds(summary['rounds'])} ({seconds}).")


def _rounds(count: float) -> str:
    return "1 round" if int(count) == 1 else f"{int(count)} rounds"


def setting_label(config: Mapping) -> str:
    """What makes a job's setting besides its dataset and model, for a report that aggregates over
    settings: the scenario options that change the data (only those in effect) and the label
    budget, e.g. ``imbalance 10; init 20 + 10/round x 10``. ``config`` is the resolved config as
    plain containers."""
    data, loop = config["dataset"], config["loop"]
    parts = []
    if data.get("train_subset"):
        parts.append(f"pool of {data['train_subset']}")
    if data.get("test_classes") is not None:
        parts.append(f"test classes {_classes(data['test_classes'])}")
    if data.get("ood_classes"):
        share = data.get("ood_fraction")
        parts.append(f"OOD classes {_classes(data['ood_classes'])}" + (f" at {share:g}" if share is not None else ""))
    if data.get("minority_classes") and data.get("minority_keep", 1) < 1:
        parts.append(f"classes {_classes(data['minority_classes'])} at {data['minority_keep']:g}")
    if data.get("imbalance_ratio", 1) != 1:
        parts.append(f"imbalance {data['imbalance_ratio']:g}")
    if data.get("label_noise"):
        parts.append(f"label noise {data['label_noise']:g} {data.get('label_noise_kind', 'symmetric')}")
    if data.get("repeat", 1) > 1 or data.get("repeat_noise"):
        noise = data.get("repeat_noise")
        parts.append(f"repeat {data.get('repeat', 1)}" + (f" noise {noise:g}" if noise else ""))
    if data.get("val_size"):
        parts.append(f"validation {data['val_size']:g}")
    init = f"init {loop['init_size']}"
    if str(loop.get("init_strategy", "balanced")) != "balanced":
        init += f" {loop['init_strategy']}"
    rounds = loop.get("max_rounds")
    parts.append(f"{init} + {loop['step_size']}/round" + (f" x {rounds}" if rounds is not None else ""))
    return "; ".join(parts)


def _classes(values: Iterable) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"
