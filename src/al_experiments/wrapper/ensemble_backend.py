"""The ensemble backend of ``DeepEnsemble``: M member wrappers (one ``Model`` per network) asked
through their public methods only. The ensemble's predictive samples are the members' softmax
outputs, stacked as the sample axis: ``(N, M, C)``, consistent already (sample t is member t
for every input), so every query function runs on them as on MC-dropout samples, with T = M.
"""

from __future__ import annotations

import contextlib
import logging
import os
from types import SimpleNamespace
from typing import Any

import numpy as np

from al_experiments.validation import WHOLE_AT_LEAST_1, optional
from al_experiments.wrapper.sampling import DEFAULT_ROWS_PER_PASS
from al_experiments.wrapper.interface import CONSISTENT_SAMPLES, EMBEDDINGS, INDEPENDENT_SAMPLES
from al_experiments.wrapper.keras_metrics import is_class_metric

log = logging.getLogger(__name__)

_SUPPORTED = {INDEPENDENT_SAMPLES, CONSISTENT_SAMPLES, EMBEDDINGS}


class EnsembleBackend:
    """The members of an ensemble behind one wrapper."""

    def __init__(self, members: list[Any]) -> None:
        self.members = list(members)
        self.loss: Any = None
        self.metrics: list[Any] = []
        self.eval_metrics: list[Any] = []

    @property
    def network(self) -> Any:
        """The first member's network (what ``get_model`` gives)."""
        return self.members[0].get_model()

    def supports(self, capability: str, stochastic: bool) -> bool:
        return capability in _SUPPORTED

    # ------------------------------------------------------------------ compile, reset
    def compile(self, **kwargs: Any) -> None:
        """Compile every member; each gets its own copy of the optimizer and metric objects."""
        metrics = list(kwargs.get("metrics") or [])
        for member in self.members:
            member.compile(**{**kwargs, "optimizer": _fresh(kwargs.get("optimizer", "rmsprop")),
                              "metrics": [_fresh(m) for m in metrics]})
        self.remember_compile(kwargs.get("loss"), metrics)

    def remember_compile(self, loss: Any, metrics: list[Any]) -> None:
        self.loss = loss
        self.metrics = [m for m in metrics if not is_class_metric(m)]
        self.eval_metrics = ([loss] if loss is not None else []) + list(metrics)

    def ensure_ready(self, inputs: Any = None) -> None:
        for member in self.members:
            member.backend.ensure_ready(inputs)

    def reset(self, policy: str, seed: int, round_index: int, pool: Any = None, dataset: Any = None) -> None:
        """Every member's own reset for the same round (each with its own seed)."""
        for member in self.members:
            member.reset(pool, dataset, round_index=round_index)

    def renewable(self, policy: str) -> bool:
        return bool(self.members) and all(member.renewable() for member in self.members)

    def resume_state(self, policy: str, round_index: int) -> dict[str, list[np.ndarray]] | None:
        """Every member's ``resume_state``, under ``member<m>.<part>`` keys (None unless warm)."""
        states = [member.resume_state() for member in self.members]
        if any(state is None for state in states):
            return None
        return {f"member{index}.{part}": arrays
                for index, state in enumerate(states) for part, arrays in state.items()}

    def restore_resume_state(self, state: dict[str, list[np.ndarray]]) -> None:
        for index, member in enumerate(self.members):
            prefix = f"member{index}."
            member.restore_resume_state({key[len(prefix):]: arrays for key, arrays in state.items()
                                         if key.startswith(prefix)})

    # ------------------------------------------------------------------ training
    def fit(self, x: Any, y: Any, params: dict[str, Any], seed: int, round_index: int, **_: Any):
        """Train every member on the same data; the history is the member mean per epoch."""
        with member_tracing():
            histories = [member.fit(x, y, **params) for member in self.members]
        return SimpleNamespace(history=_mean_history([dict(getattr(h, "history", h) or {}) for h in histories]))

    # ------------------------------------------------------------------ prediction
    def num_outputs(self) -> int | None:
        return self.members[0].num_outputs()

    def probe_num_outputs(self, inputs: Any) -> int | None:
        return self.members[0].probe_num_outputs(inputs)

    def sample_chunks(self, inputs: Any, sample_size: int | None, batch_size: int | None, stochastic: bool = True):
        """Yield ``(start, stop, probs)`` with probs of shape ``(stop - start, M, C)``;
        ``sample_size`` is ignored (the members are the samples)."""
        optional(WHOLE_AT_LEAST_1).check("batch_size", batch_size)
        size = int(batch_size or DEFAULT_ROWS_PER_PASS)  # rows per member pass, as for one sample
        n = len(inputs)
        for start in range(0, n, size):
            stop = min(n, start + size)
            chunk = np.asarray(inputs[start:stop])  # gathered once, shared by the members
            with member_tracing():
                probs = [member.predictive_samples(chunk, 1, stop - start) for member in self.members]
            yield start, stop, np.concatenate(probs, axis=1)

    def predictive_samples(self, inputs: Any, sample_size: int | None, batch_size: int | None,
                           stochastic: bool = True) -> np.ndarray:
        """The members' class probabilities, shape ``(N, M, C)``."""
        parts = [probs for _, _, probs in self.sample_chunks(inputs, sample_size, batch_size)]
        if not parts:
            return np.zeros((0, len(self.members), self.num_outputs()), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def predict(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool = True) -> np.ndarray:
        return self.predictive_samples(inputs, sample_size, batch_size).mean(axis=1)

    def forward(self, inputs: Any, sample_size: int | None = None, batch_size: int | None = None,
                **kwargs: Any) -> np.ndarray:
        return self.predictive_samples(inputs, sample_size, batch_size)

    def consistent_samples(self, inputs: Any, sample_size: int | None, seed: int | None, batch_size: int | None,
                           stochastic: bool = True) -> np.ndarray:
        """The members' class probabilities ``(N, M, C)``: consistent already, since sample t is
        member t for every input (``sample_size`` and ``seed`` are ignored)."""
        return self.predictive_samples(inputs, sample_size, batch_size)

    def reduced_score_chunks(self, *args: Any, **kwargs: Any):
        raise ValueError("A DeepEnsemble's samples come from its members' separate networks; score them "
                         "from its predictive samples.")

    consistent_score_chunks = reduced_score_chunks

    def decision_values(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
        raise ValueError("A DeepEnsemble gives class probabilities, not decision values.")

    def embeddings(self, inputs: Any, batch_size: int | None, return_probs: bool, layer_name: str | None):
        """The members' embeddings side by side, ``(N, M * D)``; with ``return_probs`` also the
        mean of the members' deterministic class probabilities ``(N, C)``.

        Concatenation (not averaging) keeps what each member sees: the squared Euclidean
        distance between two concatenated embeddings is the sum of the members' squared
        distances, so distance-based selectors (Core-set, BADGE) weigh every member equally,
        while a mean of embeddings would mix unrelated feature spaces (each member learns its
        own basis). ``layer_name`` names the layer in the first network; a member whose layers
        are named differently (networks from a builder) uses the layer at the same position.
        """
        for member, name in zip(self.members, self._member_layers(layer_name)):
            member.embedding_layer = name
        with member_tracing():
            parts = [member.embeddings(inputs, batch_size, return_probs=return_probs) for member in self.members]
        if not return_probs:
            return np.concatenate(parts, axis=1)
        features = np.concatenate([part[0] for part in parts], axis=1)
        return features, np.mean([part[1] for part in parts], axis=0).astype(np.float32)

    def _member_layers(self, name: str | None) -> list[str | None]:
        if name is None:
            return [None] * len(self.members)
        first_network = self.network
        first = [layer.name for layer in first_network.layers]
        if name not in first:
            raise ValueError(
                f"embedding_layer={name!r} is not a layer of {first_network.name!r}; its layers are {first}."
            )
        names = []
        for member in self.members:
            own = [layer.name for layer in member.get_model().layers]
            names.append(name if name in own or len(own) != len(first) else own[first.index(name)])
        return names

    # ------------------------------------------------------------------ weights on disk
    def save_weights(self, directory: str) -> str:
        """Each member's weights in its own folder (``<directory>/member_<m>/``)."""
        for member in self.members:
            os.makedirs(member.checkpoint_path, exist_ok=True)
            member.save_weights()
        return directory

    def load_weights(self, directory: str) -> None:
        for member in self.members:
            member.load_weights()

    def has_save_state(self, directory: str) -> bool:
        return all(member.has_save_state() for member in self.members)

    def disable_batch_norm(self) -> None:
        for member in self.members:
            member.disable_batch_norm()


class _DropMemberRetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def member_tracing():
    """Silence TF's "frequent retracing" warning while members trace their own compiled functions.

    Each member compiles the same trainer/sampler code once, so M >= 5 members look to TF like
    a function re-created in a loop; here that is one trace per member, as intended.
    """
    tf_logger = logging.getLogger("tensorflow")
    drop = _DropMemberRetracingWarning()
    tf_logger.addFilter(drop)
    try:
        yield
    finally:
        tf_logger.removeFilter(drop)


def _fresh(obj: Any) -> Any:
    """A new object of the same config: Keras optimizers and metrics keep per-model state."""
    from_config = getattr(type(obj), "from_config", None)
    if from_config is None or not hasattr(obj, "get_config"):
        return obj  # a string name: Keras makes a new object per compile
    return from_config(obj.get_config())


def _mean_history(histories: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per-epoch mean over members of each key they all report."""
    if not histories:
        return {}
    keys = [k for k in histories[0] if all(k in h for h in histories[1:])]
    merged: dict[str, list[float]] = {}
    for key in keys:
        length = min(len(h[key]) for h in histories)  # callbacks may stop members at different epochs
        merged[key] = np.mean([h[key][:length] for h in histories], axis=0).astype(float).tolist()
    return merged
