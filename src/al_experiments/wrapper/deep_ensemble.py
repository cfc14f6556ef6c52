"""``DeepEnsemble``: M independently initialised networks (Lakshminarayanan et al., 2017).

Each member is a plain ``Model`` around its own copy of the network, so training and prediction
reuse the compiled ``Trainer`` and ``Sampler`` of the base wrapper unchanged. The ensemble's
predictive samples are the members' softmax outputs, stacked as the sample axis: ``(N, M, C)``.
Every query function therefore runs on it as on MC-dropout samples, with T = M.
"""

from __future__ import annotations

import contextlib
import logging
import os
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from al_experiments.config import Config
from al_experiments.utils.seeding import derive_seed
from al_experiments.validation import WHOLE_AT_LEAST_1, optional, reject_unknown_kwargs
from al_experiments.wrapper.model import Model

log = logging.getLogger(__name__)


class DeepEnsemble(Model):
    """An ensemble of ``members`` networks of one architecture, each trained on the labelled set.

    Args:
        model: A Keras network (the other members are ``keras.models.clone_model`` copies with
            freshly drawn weights), a function that builds a new network per call, or a sequence
            of networks (one per member).
        config: ``Config`` shared by all members. ``query``/``eval`` ``sample_size`` is ignored:
            the samples are the members' predictions, so T is always ``members``.
        members: Ensemble size M (default 5; the length of ``model`` when it is a sequence).
        **kwargs: As for ``Model`` (``name``, ``reset``, ``fast_fit``, ...); ``reset`` applies to
            every member, each with its own seed derived from (seed, member), and per round from
            (seed, round, member), so members differ and a job is deterministic.
    """

    _generic_objects = False  # model may be a builder function or a list: never wrapped generically

    def __init__(self, model: Any, config: Config | None = None, members: int | None = None, **kwargs: Any) -> None:
        # Checked before the members are built (Model.__init__ checks again, at no cost).
        reject_unknown_kwargs(self._owner_name(), kwargs, self._accepted_keywords())
        kwargs.setdefault("model_type", "ensemble")  # tf_al's dev branch named it so
        networks = _member_networks(model, members)
        self._members: list[Model] = []
        super().__init__(networks[0], config, **kwargs)
        self._members = [
            Model(
                network, self._config, model_type=f"member{index}", reset=self.reset_policy,
                fast_fit=self.fast_fit, xla=self.xla, classification=self._classification, is_binary=self._is_binary,
                checkpoint_path=os.path.join(self._checkpoint_path, f"member_{index}"),
            )
            for index, network in enumerate(networks)
        ]
        self.set_seed(self._seed)
        if self._loss is not None:  # the network came compiled: give every member the same setup
            self.compile(optimizer=networks[0].optimizer, loss=self._loss, metrics=self._metrics)

    # ------------------------------------------------------------------ members
    @property
    def members(self) -> list[Model]:
        """The member wrappers (one ``Model`` per network)."""
        return list(self._members)

    @property
    def reset_policy(self) -> str:
        return self._reset_policy

    @reset_policy.setter
    def reset_policy(self, value: str) -> None:
        # Model.__init__ assigns it before the members exist; later changes reach every member.
        self._reset_policy = value
        for member in getattr(self, "_members", ()):
            member.reset_policy = value

    def set_seed(self, seed: int) -> None:
        """Seed the ensemble; member m draws from ``derive_seed(seed, "member", m)``."""
        super().set_seed(seed)
        for index, member in enumerate(self._members):
            member.set_seed(derive_seed(self._seed, "member", index))

    def renewable(self) -> bool:
        return bool(self._members) and all(member.renewable() for member in self._members)

    def renew(self, config: Config) -> None:
        """``Model.renew`` for the ensemble and every member."""
        super().renew(config)
        for member in self._members:
            member.renew(config)

    def stochastic(self) -> bool:
        """Samples differ from one another (one per member), though each member is deterministic."""
        return True

    # ------------------------------------------------------------------ compile, reset, fit
    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile every member; each gets its own copy of the optimizer and metric objects."""
        if args:
            raise ValueError(
                "DeepEnsemble.compile takes keyword arguments only (optimizer=..., loss=..., metrics=...)."
            )
        metrics = list(kwargs.get("metrics") or [])
        for member in self._members:
            member.compile(**{**kwargs, "optimizer": _fresh(kwargs.get("optimizer", "rmsprop")),
                              "metrics": [_fresh(m) for m in metrics]})
        self._remember_compile(loss=kwargs.get("loss"), metrics=metrics)
        self._compile_params = dict(kwargs)

    def _ensure_ready(self) -> None:
        for member in self._members:
            member._ensure_ready()

    def reset(self, pool: Any = None, dataset: Any = None, round_index: int | None = None) -> None:
        """Apply the reset policy to every member for the same round."""
        self._round = self._round + 1 if round_index is None else int(round_index)
        for member in self._members:
            member.reset(pool, dataset, round_index=self._round)

    def fit(self, *args: Any, **kwargs: Any):
        """Train every member on the same data; the history is the member mean per epoch."""
        with _member_tracing():
            histories = [member.fit(*args, **kwargs) for member in self._members]
        return SimpleNamespace(history=_mean_history([dict(getattr(h, "history", h) or {}) for h in histories]))

    def resume_state(self) -> dict[str, list[np.ndarray]] | None:
        """Every member's ``resume_state``, under ``member<m>.<part>`` keys (None unless warm)."""
        states = [member.resume_state() for member in self._members]
        if any(state is None for state in states):
            return None
        return {f"member{index}.{part}": arrays
                for index, state in enumerate(states) for part, arrays in state.items()}

    def restore_resume_state(self, state: dict[str, list[np.ndarray]]) -> None:
        for index, member in enumerate(self._members):
            prefix = f"member{index}."
            member.restore_resume_state({key[len(prefix):]: arrays for key, arrays in state.items()
                                         if key.startswith(prefix)})

    # ------------------------------------------------------------------ prediction
    def __call__(self, inputs: Any, sample_size: int | None = None, batch_size: int | None = None,
                 **kwargs: Any) -> np.ndarray:
        return self.predictive_samples(inputs, sample_size, batch_size)

    def predictive_samples(self, inputs: Any, sample_size: int | None = None,
                           batch_size: int | None = None) -> np.ndarray:
        """The members' class probabilities, shape ``(N, M, C)``; ``sample_size`` is ignored."""
        parts = [probs for _, _, probs in self.sample_chunks(inputs, sample_size, batch_size)]
        if not parts:
            return np.zeros((0, len(self._members), self.num_outputs()), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def sample_chunks(self, inputs: Any, sample_size: int | None = None, batch_size: int | None = None):
        """Yield ``(start, stop, probs)`` with probs of shape ``(stop - start, M, C)``."""
        if sample_size is not None and int(sample_size) != len(self._members):
            log.debug("DeepEnsemble ignores sample_size=%s: its %d members are its samples.",
                      sample_size, len(self._members))
        optional(WHOLE_AT_LEAST_1).check("batch_size", batch_size)
        from al_experiments.wrapper.compiled import DEFAULT_ROWS_PER_PASS

        size = int(batch_size or DEFAULT_ROWS_PER_PASS)  # rows per member pass, as for one sample
        n = len(inputs)
        for start in range(0, n, size):
            stop = min(n, start + size)
            chunk = np.asarray(inputs[start:stop])  # gathered once, shared by the members
            with _member_tracing():
                probs = [member.predictive_samples(chunk, 1, stop - start) for member in self._members]
            yield start, stop, np.concatenate(probs, axis=1)

    def consistent_samples(self, inputs: Any, sample_size: int | None = None, seed: int | None = None,
                           batch_size: int | None = None) -> np.ndarray:
        """The members' class probabilities ``(N, M, C)``: consistent already, since sample t is
        member t for every input. ``sample_size`` and ``seed`` are ignored (as in
        ``predictive_samples``)."""
        return self.predictive_samples(inputs, sample_size, batch_size)

    def embeddings(self, inputs: Any, batch_size: int | None = None, return_probs: bool = False):
        """The members' embeddings side by side, ``(N, M * D)``; with ``return_probs`` also the
        mean of the members' deterministic class probabilities ``(N, C)``.

        Concatenation (not averaging) keeps what each member sees: the squared Euclidean
        distance between two concatenated embeddings is the sum of the members' squared
        distances, so distance-based selectors (Core-set, BADGE) weigh every member equally,
        while a mean of embeddings would mix unrelated feature spaces (each member learns its
        own basis). ``embedding_layer`` names the layer in the first network; a member whose
        layers are named differently (networks from a builder) uses the layer at the same
        position.
        """
        names = self._member_embedding_layers()
        with _member_tracing():
            parts = [member._embed(inputs, batch_size, return_probs, name)
                     for member, name in zip(self._members, names)]
        if not return_probs:
            return np.concatenate(parts, axis=1)
        features = np.concatenate([part[0] for part in parts], axis=1)
        return features, np.mean([part[1] for part in parts], axis=0).astype(np.float32)

    def _member_embedding_layers(self) -> list[str | None]:
        name = self.embedding_layer
        if name is None:
            return [None] * len(self._members)
        first = [layer.name for layer in self._model.layers]
        if name not in first:
            raise ValueError(
                f"embedding_layer={name!r} is not a layer of {self._model.name!r}; its layers are {first}."
            )
        names = []
        for member in self._members:
            layers = member.get_model().layers
            own = [layer.name for layer in layers]
            names.append(name if name in own or len(own) != len(first) else own[first.index(name)])
        return names

    # ------------------------------------------------------------------ weights on disk
    def save_weights(self) -> str:
        """Each member's weights in ``<checkpoint_path>/member_<m>/``; returns the folder."""
        for member in self._members:
            os.makedirs(member._checkpoint_path, exist_ok=True)
            member.save_weights()
        return self._checkpoint_path

    def load_weights(self) -> None:
        for member in self._members:
            member.load_weights()

    def has_save_state(self) -> bool:
        return all(member.has_save_state() for member in self._members)

    def disable_batch_norm(self) -> None:
        for member in self._members:
            member.disable_batch_norm()


class _DropMemberRetracingWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _member_tracing():
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


def _member_networks(model: Any, members: int | None) -> list[Any]:
    """One network per member: the given sequence, M builder calls, or the network plus clones."""
    import keras

    optional(WHOLE_AT_LEAST_1).check("members", members)
    if isinstance(model, Sequence):
        networks = list(model)
        if not networks or (members is not None and members != len(networks)):
            raise ValueError(
                f"DeepEnsemble got {len(networks)} networks but members={members}; pass one network per member."
            )
        return networks
    count = 5 if members is None else int(members)
    if isinstance(model, keras.Model):
        return [model] + [_clone(model) for _ in range(count - 1)]
    if callable(model):
        return [_built(model) for _ in range(count)]
    raise ValueError(
        f"DeepEnsemble needs a Keras model, a function that builds one, or a list of them; got {type(model).__name__}."
    )


def _clone(network: Any) -> Any:
    """Same architecture, freshly initialised weights (``clone_model`` never copies weights)."""
    import keras

    try:
        return keras.models.clone_model(network)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(
            f"Cannot clone the network {network.name!r} ({exc}); pass a function that builds a new "
            "network per call, or a list of networks, instead."
        ) from None


def _built(builder: Callable[[], Any]) -> Any:
    import keras

    network = builder()
    if not isinstance(network, keras.Model):
        raise ValueError(f"The network builder returned {type(network).__name__}, not a Keras model.")
    return network


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
