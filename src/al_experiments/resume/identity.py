"""The identity of a job: a hash of what determines its results, not of where they go."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Top-level config keys that change where results are written or how a job is run, never what
# it computes.
VOLATILE_KEYS = frozenset({"mlflow", "metrics_dir", "run_name", "tags", "resume", "state_dir", "compile_cache",
                           "report", "hydra"})


def job_identity(config: Mapping[str, Any]) -> str:
    """A 16-hex-digit hash of the resolved ``config`` without ``VOLATILE_KEYS``.

    Keys are sorted, so the order of overrides on the command line does not matter.
    """
    return config_hash({k: v for k, v in config.items() if k not in VOLATILE_KEYS})


def config_hash(value: Any) -> str:
    """A 16-hex-digit hash of a config tree (plain containers), independent of key order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sweep_identity(task_overrides: list[str]) -> str:
    """A 16-hex-digit hash of a multirun's command-line overrides, without those of
    ``VOLATILE_KEYS``: the same sweep command gets the same MLflow parent run again."""
    kept = sorted(o for o in task_overrides if o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] not in VOLATILE_KEYS)
    return hashlib.sha256("\n".join(kept).encode("utf-8")).hexdigest()[:16]
