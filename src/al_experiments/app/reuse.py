"""The jobs of a multirun that run in one process share their network where they can.

The basic launcher runs a sweep's jobs one after another in one process. Jobs that differ only
in seed, query or loop settings build the same network; building it again costs a Keras
session reset and a trace of every compiled function (a few tenths of a second a job, more than
a small job's rounds). So the last job's wrapper is kept, keyed by everything it was built from,
and the next job with the same key takes it over (``Model.renew``): its first round's reset
redraws every weight, the optimizer state and the dropout generators from the new job's seed,
so the job computes exactly what a freshly built network would.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from al_experiments.wrapper.interface import as_active_model

# What the network, the wrapper and its compiled functions are made of. The rest of `model`
# (fit, eval) and the query's sample count are the wrapper's Config, which ``renew`` replaces.
_BUILT_FROM = ("network", "estimator", "wrapper", "optimizer", "loss")


def architecture_key(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> str:
    """The identity of the built wrapper a job asks for, as a JSON string."""
    model = OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True)
    built_from = {name: model.get(name) for name in _BUILT_FROM}
    return json.dumps({**built_from, "input_shape": list(input_shape), "num_classes": int(num_classes)},
                      sort_keys=True, default=str)


class LastModel:
    """The last job's wrapper, offered to the next job with the same key (one at a time: a
    sweep groups jobs of one architecture, and an old network is memory for nothing)."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._model: Any = None

    def take(self, key: str) -> Any:
        """The kept wrapper if it was built for ``key`` and can be renewed, else None (and the
        kept one is let go)."""
        model, kept_key = self._model, self._key
        self.clear()
        if model is not None and kept_key == key and as_active_model(model).renewable():
            return model
        return None

    def keep(self, key: str, model: Any) -> None:
        self._key, self._model = key, model

    def clear(self) -> None:
        self._key = self._model = None


LAST_MODEL = LastModel()
