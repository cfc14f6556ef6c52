"""How a round's training is paced beyond plain epochs: a step budget (``min_steps``), early
stopping on the validation split and epochs of drawn points (the ``fit`` section's keys)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from al_experiments.validation import WHOLE_AT_LEAST_1, Options, optional

MONITORS = ("accuracy", "loss")


@dataclass(frozen=True)
class TrainingProtocol:
    """How a round's training is paced beyond plain epochs (the ``fit`` section's keys).

    ``patience``: early stopping on the validation split after that many epochs without an
    improvement of ``monitor`` (``accuracy``: higher is better; ``loss``: the mean negative
    log-likelihood, lower is better), restoring the best epoch's weights; None: no early
    stopping. ``epoch_samples``: an epoch is that many labelled points drawn with replacement
    (BatchBALD's 5,056), so small labelled sets still get steps; None: one pass over the set.
    """

    patience: int | None = None
    monitor: str = "accuracy"
    epoch_samples: int | None = None
    validation: tuple[Any, Any] | None = None

    @classmethod
    def pop_from(cls, params: dict[str, Any]) -> "TrainingProtocol":
        """Take the protocol's keys out of ``fit`` keywords and check them."""
        patience = params.pop("patience", None)
        monitor = params.pop("monitor", None) or "accuracy"
        epoch_samples = params.pop("epoch_samples", None)
        validation = params.pop("validation_data", None) if patience is not None else None
        optional(WHOLE_AT_LEAST_1).check("patience", patience)
        optional(WHOLE_AT_LEAST_1).check("epoch_samples", epoch_samples)
        Options(MONITORS).check("monitor", monitor)
        return cls(patience, monitor, epoch_samples, None if validation is None else tuple(validation))

    @property
    def plain(self) -> bool:
        return self.patience is None and self.epoch_samples is None


def epochs_for_steps(size: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """``epochs``, or more so that training takes at least ``min_steps`` gradient steps.

    An epoch over ``size`` points at ``batch_size`` is ``ceil(size / batch_size)`` steps, so
    with 20 labels at batch 32, 50 epochs are only 50 steps: too few for a network trained from
    fresh weights to fit even 20 points, and an underfit network's uncertainty is noise. A step
    budget keeps the small early rounds trained as well as the later ones.
    """
    WHOLE_AT_LEAST_1.check("min_steps", min_steps)
    steps_per_epoch = max(1, math.ceil(size / max(1, batch_size)))
    return max(int(epochs), math.ceil(min_steps / steps_per_epoch))
