"""The model interface: what the loop asks of a model, and which of it is optional.

``ActiveModel`` is a ``typing.Protocol``. Every model must have the three methods a round calls:
``reset`` (between rounds), ``fit`` (on the labelled set) and ``evaluate`` (on the test split).
The other methods are optional; each has the default written here, which a class gets by
inheriting ``ActiveModel`` (``Model``, ``McDropout`` and ``DeepEnsemble`` do). Any other object
with the three required methods, such as a tf_al-style model written by hand, is adapted by
``as_active_model``, so the loop calls every method without asking whether it exists.

What strategies may ask of a model is a second Protocol, ``QueryModel``: predictive samples
(independent or consistent), scores reduced inside a compiled sampler, embeddings with the
predictive of the same pass, decision values. A model declares which of these it gives through
``supports(capability)`` (the names in ``CAPABILITIES``), so the round's view asks instead of
probing for methods; ``supports`` answers the same question for an object that is not one
(a tf_al-style model written by hand) from what it defines.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

REQUIRED_METHODS = ("reset", "fit", "evaluate")

# What a strategy may ask of a model (``QueryModel.supports``).
INDEPENDENT_SAMPLES = "independent_samples"  # sample_chunks / predictive_samples: (N, T, C)
CONSISTENT_SAMPLES = "consistent_samples"  # consistent_samples: sample t is one draw for all inputs
REDUCED_SCORES = "reduced_scores"  # reduced_score_chunks / consistent_score_chunks in its compiled sampler
EMBEDDINGS = "embeddings"  # embeddings(inputs, batch_size, return_probs=...) with the same pass's predictive
DECISION_VALUES = "decision_values"  # ranks points by decision_values: it gives no class probabilities
OWN_SCORER = "own_scorer"  # a tf_al-style get_query_fn of its own that scores points its way
CAPABILITIES = (INDEPENDENT_SAMPLES, CONSISTENT_SAMPLES, REDUCED_SCORES, EMBEDDINGS, DECISION_VALUES,
                OWN_SCORER)


@runtime_checkable
class ActiveModel(Protocol):
    """A model the active-learning loop can run."""

    # ------------------------------------------------------------------ required
    def reset(self, pool: Any, dataset: Any, round_index: int | None = None) -> None:
        """Prepare for the round's training (fresh weights, in the paper protocol)."""
        ...

    def fit(self, inputs: Any, targets: Any, **kwargs: Any) -> Any:
        """Train on the labelled set; a Keras ``History`` or a dict of per-epoch lists."""
        ...

    def evaluate(self, inputs: Any, targets: Any, **kwargs: Any) -> Mapping[str, float]:
        """Metrics of the test split (``loss``, ``accuracy``, ...)."""
        ...

    # ------------------------------------------------------------------ optional
    def set_seed(self, seed: int) -> None:
        """Seed of the model's per-round randomness. Default: nothing to seed."""

    def get_config_for(self, name: str) -> dict[str, Any]:
        """Keyword arguments of the ``"query"`` and ``"eval"`` calls. Default: none."""
        return {}

    def num_outputs(self) -> int | None:
        """Output width (classes; 1 = one sigmoid unit). Default: None, not known."""
        return None

    def probe_num_outputs(self, inputs: Any) -> int | None:
        """``num_outputs``, predicting ``inputs`` if that is how the model learns it."""
        return self.num_outputs()

    def optimize(self, inputs: Any, targets: Any) -> Mapping[str, float] | None:
        """Metrics of the validation split after training. Default: None, no validation step."""
        return None

    def resume_state(self) -> Any:
        """What a checkpoint must hold beyond the labelled set to resume. Default: None."""
        return None

    def restore_resume_state(self, state: Any) -> None:
        """Take back ``resume_state()``. Default: there is nothing to restore."""
        raise ValueError(f"{type(self).__name__} keeps no resume state, so it cannot restore one.")

    def get_model_name(self) -> str:
        """The model's part of the experiment name. Default: the class name."""
        return type(self).__name__

    def renewable(self) -> bool:
        """Can ``renew`` start another job on this model, computing what a freshly built one
        would (see ``Model.renewable``)? Default: False, every job builds its own."""
        return False

    def renew(self, config: Any) -> None:
        """Start another job on this model with the job's ``Config``. Default: refused."""
        raise ValueError(f"{type(self).__name__} cannot be renewed for another job; build a new one.")


@runtime_checkable
class QueryModel(Protocol):
    """What strategies may ask of a model, each part declared by ``supports``.

    A method whose capability is not supported raises ``ValueError`` with one sentence saying
    why and what to use instead.
    """

    def supports(self, capability: str) -> bool:
        """Does the model give ``capability`` (one of ``CAPABILITIES``)?"""
        ...

    def num_outputs(self) -> int | None:
        """Output width (classes; 1 = one sigmoid unit); None while not known."""
        ...

    def sample_chunks(self, inputs: Any, sample_size: int = 1,
                      batch_size: int | None = None) -> Iterator[tuple[int, int, Any]]:
        """``(start, stop, probs)`` chunk by chunk, probs ``(stop - start, T, C)`` (independent)."""
        ...

    def predictive_samples(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None) -> Any:
        """Independent class probabilities ``(N, T, C)``."""
        ...

    def consistent_samples(self, inputs: Any, sample_size: int, seed: int, batch_size: int | None = None) -> Any:
        """Class probabilities ``(N, T, C)`` where sample t is one parameter draw for every input."""
        ...

    def reduced_score_chunks(self, inputs: Any, sample_size: int, reduction: Callable,
                             batch_size: int | None = None) -> Iterator[tuple[int, int, Any]]:
        """``(start, stop, scores)``: independent samples reduced by ``reduction`` in the sampler."""
        ...

    def consistent_score_chunks(self, inputs: Any, sample_size: int, seed: int, reduction: Callable,
                                batch_size: int | None = None) -> Iterator[tuple[int, int, Any]]:
        """``(start, stop, scores)``: consistent samples reduced by ``reduction`` in the sampler."""
        ...

    def embeddings(self, inputs: Any, batch_size: int | None = None, return_probs: bool = False) -> Any:
        """Deterministic embeddings ``(N, D)``; with ``return_probs`` also the predictive ``(N, C)``."""
        ...

    def decision_values(self, inputs: Any, batch_size: int | None = None) -> Any:
        """Decision values: ``(N,)`` for a binary classifier, ``(N, C)`` for several classes."""
        ...


# What an object that is no QueryModel shows of each capability (a hand-written tf_al model).
_SHOWN_BY = {
    INDEPENDENT_SAMPLES: ("predictive_samples",),
    CONSISTENT_SAMPLES: ("consistent_samples",),
    REDUCED_SCORES: (),  # only a compiled sampler reduces scores
    EMBEDDINGS: ("embeddings",),
    DECISION_VALUES: (),  # declared only: having decision values does not mean ranking by them
    OWN_SCORER: ("get_query_fn",),
}


def supports(model: Any, capability: str) -> bool:
    """Does ``model`` give ``capability``? A ``QueryModel`` answers itself; any other object
    (a tf_al-style model written by hand, adapted or not) gives what it has a method for."""
    if capability not in CAPABILITIES:
        raise ValueError(f"{capability!r} is not a model capability; use one of {', '.join(CAPABILITIES)}.")
    own = model.model if isinstance(model, _AdaptedModel) else model
    if declares(own):
        return bool(own.supports(capability))
    return any(callable(getattr(own, name, None)) for name in _SHOWN_BY[capability])


def declares(model: Any) -> bool:
    """Does ``model`` declare its capabilities itself (a ``QueryModel``)? Its methods then say
    why when asked for what it does not support."""
    own = model.model if isinstance(model, _AdaptedModel) else model
    return isinstance(own, QueryModel)


class _AdaptedModel(ActiveModel):
    """An object with the three required methods, with the defaults for what it lacks."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._round_index_accepted = _accepts_keyword(model.reset, "round_index")

    def __getattr__(self, name: str) -> Any:
        # The strategies' building blocks (predictive samples, a tf_al get_query_fn, ...).
        if name == "model":  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)

    def reset(self, pool: Any, dataset: Any, round_index: int | None = None) -> None:
        if self._round_index_accepted:
            self.model.reset(pool, dataset, round_index=round_index)
        else:
            self.model.reset(pool, dataset)  # tf_al's signature

    def fit(self, inputs: Any, targets: Any, **kwargs: Any) -> Any:
        return self.model.fit(inputs, targets, **kwargs)

    def evaluate(self, inputs: Any, targets: Any, **kwargs: Any) -> Mapping[str, float]:
        return self.model.evaluate(inputs, targets, **kwargs)


def _optional(name: str):
    def forward(self: _AdaptedModel, *args: Any, **kwargs: Any) -> Any:
        own = getattr(self.model, name, None)
        if own is None:
            return getattr(ActiveModel, name)(self, *args, **kwargs)
        return own(*args, **kwargs)

    forward.__name__ = name
    forward.__doc__ = getattr(ActiveModel, name).__doc__
    return forward


OPTIONAL_METHODS = ("set_seed", "get_config_for", "num_outputs", "probe_num_outputs", "optimize",
                    "resume_state", "restore_resume_state", "get_model_name", "renewable", "renew")
for _name in OPTIONAL_METHODS:
    setattr(_AdaptedModel, _name, _optional(_name))


def as_active_model(model: Any) -> ActiveModel:
    """``model`` itself if it inherits ``ActiveModel``; an object with its three required methods
    adapted to the whole interface; anything else is refused with what it lacks."""
    if ActiveModel in type(model).__mro__:
        return model
    missing = [name for name in REQUIRED_METHODS if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(
            f"{type(model).__name__} cannot be run by the loop: it has no {', '.join(missing)} "
            "method; wrap the network in Model, McDropout or DeepEnsemble."
        )
    return _AdaptedModel(model)


def _accepts_keyword(fn: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
