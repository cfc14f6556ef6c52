"""Seeding: one seed drives Python, NumPy and TensorFlow; per-round randomness is derived.

Per-round generators come from ``(seed, round, purpose)`` rather than from a global stream, so
the same round draws the same numbers however the job got there (fresh or resumed).
"""

from __future__ import annotations

import random
import zlib

import numpy as np

from al_experiments.validation import rng_from


def seed_everything(seed: int, tensorflow: bool = True) -> None:
    """Seed Python's ``random``, NumPy's global RNG and, unless ``tensorflow=False`` (a job
    without a Keras network, which need not load it), TensorFlow/Keras."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if not tensorflow:
        return
    try:
        import keras  # TensorFlow-heavy: loaded only where a job seeds it
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return
    keras.utils.set_random_seed(seed % 2**32)


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 31-bit seed derived deterministically from ``seed`` and ``keys``."""
    words = [int(seed) % 2**32]
    for key in keys:
        words.append(zlib.crc32(key.encode()) if isinstance(key, str) else int(key) % 2**32)
    return int(np.random.SeedSequence(words).generate_state(1)[0] % 2**31)


def round_rng(seed: int, round_index: int, purpose: str) -> np.random.Generator:
    """The generator for one purpose (``"query"``, ``"fit"``, ...) in one round."""
    return np.random.default_rng(derive_seed(seed, round_index, purpose))


def seed_or_global(seed: int | None) -> int:
    """``seed``, or when None one drawn from NumPy's global RNG, so ``np.random.seed`` makes
    code that passes no seed reproducible, as in tf_al."""
    return int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)


def generator_or_global(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` as a Generator (``numpy.random.default_rng`` after the one seed check), or when
    None one seeded from NumPy's global RNG (see ``seed_or_global``)."""
    return np.random.default_rng(seed_or_global(None)) if rng is None else rng_from(rng)

