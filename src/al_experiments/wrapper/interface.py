"""The model interface: what the loop asks of a model, and which of it is optional.

``ActiveModel`` is a ``typing.Protocol``. Every model must have the three methods a round calls:
``reset`` (between rounds), ``fit`` (on the labelled set) and ``evaluate`` (on the test split).
The other methods are optional; each has the default written here, which a class gets by
inheriting ``ActiveModel`` (``Model``, ``McDropout`` and ``DeepEnsemble`` do). Any other object
with the three required methods, such as a tf_al-style model written by hand, is adapted by
``as_active_model``, so the loop calls every method without asking whether it exists.

What strategies ask of a model (predictive samples, consistent samples, embeddings) is not part
of this interface: a strategy asks the round's view, which says which building block is missing.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

REQUIRED_METHODS = ("reset", "fit", "evaluate")


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
    import inspect

    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
