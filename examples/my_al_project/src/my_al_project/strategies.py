"""Two query strategies, one of each kind, registered when al-experiments loads this module.

Nothing here imports TensorFlow: a score function maps predictive samples to scores, a batch
selector asks the round's view for what it needs.
"""

from __future__ import annotations

import numpy as np

from al_experiments.acquisition import register_batch_query, register_query


@register_query("confidence_ratio")
def confidence_ratio(probs: np.ndarray) -> np.ndarray:
    """Second-highest over highest mean class probability: 1 where the top two classes tie."""
    mean = np.asarray(probs, dtype=np.float64).mean(axis=1)
    top_two = np.sort(mean, axis=1)[:, -2:]
    return top_two[:, 0] / np.maximum(top_two[:, 1], 1e-12)


def _check(settings: dict) -> None:
    cap = settings["per_class"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"per_class={cap!r} is invalid: it must be a whole number >= 1 or null.")


@register_batch_query("class_balanced_bald", check=_check)
def class_balanced_bald(view, batch_size: int, rng: np.random.Generator, per_class: int | None = None):
    """BALD's best points taken in turn from each predicted class, so no class floods a batch.

    ``per_class`` caps the points of one predicted class per batch (null: no cap beyond the
    round robin); when the capped classes run out, the remaining points follow by BALD.
    """
    scores = view.scores("bald")
    predicted = view.samples().mean(axis=1).argmax(axis=1)
    by_class = {c: list(np.flatnonzero(predicted == c)[np.argsort(-scores[predicted == c], kind="stable")])
                for c in np.unique(predicted)}
    # Classes whose best point is most informative go first in each turn.
    order = sorted(by_class, key=lambda c: -scores[by_class[c][0]])
    chosen: list[int] = []
    taken = dict.fromkeys(order, 0)
    while len(chosen) < batch_size and any(by_class.values()):
        progressed = False
        for c in order:
            if by_class[c] and (per_class is None or taken[c] < per_class) and len(chosen) < batch_size:
                chosen.append(by_class[c].pop(0))
                taken[c] += 1
                progressed = True
        if not progressed:  # every class is at its cap: fill up by BALD alone
            rest = [p for c in order for p in by_class[c]]
            rest.sort(key=lambda p: -scores[p])
            chosen.extend(rest[: batch_size - len(chosen)])
            break
    return np.asarray(chosen, dtype=np.int64)
