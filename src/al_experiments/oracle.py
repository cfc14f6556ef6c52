"""``Oracle``: who labels the selected points (tf_al's API).

In pseudo mode the known targets are copied in; otherwise a callback receives
``(pool, indices)`` and must call ``pool.annotate(indices, labels)`` (a person, a script, a
labelling service).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from al_experiments.pool import Pool
from al_experiments.utils.seeding import generator_or_global
from al_experiments.validation import as_index_array, reject_empty_indices

OracleCallback = Callable[[Pool, np.ndarray], Any]


class Oracle:
    """Annotates pool entries, from known labels (pseudo mode) or through ``callback``."""

    def __init__(self, callback: OracleCallback | None = None, pseudo_mode: bool = False) -> None:
        if callback is not None and not callable(callback):
            raise ValueError("Oracle(callback=...) must be a function taking (pool, indices).")
        self.callback = callback
        self.pseudo_mode = bool(pseudo_mode)

    def is_pseudo(self, mode: bool | None = None) -> bool:
        if mode is None:
            return self.pseudo_mode
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"pseudo_mode must be True or False, got {mode!r}.")
        return bool(mode)

    def init(self, pool: Pool, size: Any, pseudo_mode: bool | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
        """Label an initial set of ``size`` points (or the given indices); returns the indices.

        An empty list of indices raises IndexError (as in tf_al); pass 0 to label nothing.
        """
        reject_empty_indices("Oracle.init", size)
        if self.is_pseudo(pseudo_mode) and pool.is_pseudo():
            return pool.init(size, rng=rng)
        if isinstance(size, (int, np.integer)):
            available = pool.get_unlabeled_indices()
            if not 0 <= size <= len(available):
                raise ValueError(
                    f"Cannot label {size} initial points: {len(available)} are unlabelled."
                )
            rng = generator_or_global(rng)
            indices = np.sort(rng.choice(available, int(size), replace=False))
        else:
            indices = as_index_array(size, len(pool))
        self._ask(pool, indices)
        return indices

    def annotate(self, pool: Pool, indices: Any, pseudo_mode: bool | None = None) -> None:
        """Label ``indices`` in ``pool``."""
        indices = as_index_array(indices, len(pool))
        if self.is_pseudo(pseudo_mode) and pool.is_pseudo():
            pool.annotate(indices)
        else:
            self._ask(pool, indices)

    def _ask(self, pool: Pool, indices: np.ndarray) -> None:
        if self.callback is None:
            raise ValueError(
                "This oracle is not in pseudo mode and has no callback: pass "
                "Oracle(callback=fn) where fn(pool, indices) calls pool.annotate(indices, labels)."
            )
        if len(indices) == 0:
            return
        self.callback(pool, indices)
        missing = np.setdiff1d(indices, pool.get_labeled_indices())
        if missing.size:
            raise RuntimeError(
                f"The oracle callback returned without labelling {missing.size} of the "
                f"{len(indices)} requested points; it must call pool.annotate(indices, labels)."
            )
