"""EPIG: expected predictive information gain (Bickford Smith et al., AISTATS 2023).

EPIG scores a pool point ``x`` by how much labelling it would tell us, on average, about the
predictions at target inputs ``x*`` drawn from where the model will be used:

    EPIG(x) = mean_m I(y; y* | x, x*_m)
            = H[p(y|x)] + mean_m H[p(y*|x*_m)] - mean_m H[p(y, y*|x, x*_m)],

where every predictive is a mean over the same T parameter draws theta_t, and the joint is
``p(y, y*) = mean_t p(y|x, theta_t) p(y*|x*_m, theta_t)`` (a C x C table). Unlike BALD, which
rewards information about the parameters, EPIG only rewards information that changes
predictions on the target distribution.

**Consistent samples are required**: the t-th sample of every pool point and every target
point must come from the same parameter draw (one dropout mask / ensemble member per t,
shared across all inputs). With independent draws the joint factorises and EPIG is ~0.

The joint tables for a chunk of pool points are one matmul, ``(n*C, T) @ (T, M*C) / T``; the
chunk is sized so the working buffers stay under :data:`DEFAULT_MAX_BYTES`. Time is
O(N M T C^2).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import entr

from al_experiments.validation import WHOLE_AT_LEAST_1, optional, validate_params

from ..scores import check_probs

__all__ = ["epig_scores", "DEFAULT_MAX_BYTES", "TARGET_SOURCES"]

# Where EPIG's target points come from: unlabelled pool points, the validation split, or a split
# of the test distribution.
TARGET_SOURCES = ("pool", "validation", "test_distribution")

# Upper bound on the working buffers of one chunk (n * C * M * C values each: one in float64,
# where the entropy is taken in place, two in float32); about the peak extra memory of a call
# beyond check_probs' float64 view or copy of the inputs.
DEFAULT_MAX_BYTES = 128 * 2**20


@validate_params({"chunk_size": optional(WHOLE_AT_LEAST_1)})
def epig_scores(
    probs_pool: ArrayLike,
    probs_target: ArrayLike,
    *,
    chunk_size: int | None = None,
    dtype: type | np.dtype = np.float64,
) -> np.ndarray:
    """EPIG score of every pool point, float64 ``(N,)`` in nats, higher = more worth labelling.

    ``probs_pool`` (N, T, C) and ``probs_target`` (M, T, C) are predictive samples that share
    the same T parameter draws (see the module docstring: consistent MC dropout or an
    ensemble). The target points are typically a random sample of M unlabelled inputs (the
    reference setting uses M = 100).

    The result lies in ``[0, log C]`` (it is an average of mutual informations between two
    C-class labels). It is clipped at 0 only to remove round-off: points whose true score is 0
    (e.g. all T samples identical) may otherwise come out as -1e-16.

    ``chunk_size`` is the number of pool points per matmul (default: as many as keep the
    working buffers under :data:`DEFAULT_MAX_BYTES`); it does not change the result beyond
    round-off. ``dtype=np.float32`` runs the matmul and the logarithms in float32, which is
    faster, at an absolute error of about 1e-7 nats (C = 10, T = M = 100); the entropy sums
    are always accumulated in float64. Inputs are validated and held in float64 either way.
    """
    pool = check_probs(probs_pool)
    target = check_probs(probs_target)
    n, t, c = pool.shape
    m, t_target, c_target = target.shape
    if t_target != t:
        raise ValueError(
            f"probs_pool has T={t} samples per point but probs_target has T={t_target}: EPIG "
            "needs the same T parameter draws for pool and target points (score both in one "
            "consistent pass)."
        )
    if c_target != c:
        raise ValueError(
            f"probs_pool has C={c} classes but probs_target has C={c_target}: pass predictions "
            "of the same model for both."
        )
    if m == 0:
        raise ValueError(
            "probs_target has no target points (M=0): pass the predictions for at least one "
            "target input, e.g. a random sample of 100 unlabelled points."
        )
    work = np.dtype(dtype)
    if work not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64; got {work}.")
    # float64 takes the entropy in place with scipy's exact entr; float32 uses a second buffer
    # for log(max(J, tiny)) (numpy's SIMD float32 log is several times faster than entr).
    buffers = 1 if work == np.float64 else 2
    if chunk_size is None:
        per_point = c * m * c * work.itemsize * buffers
        chunk = max(1, DEFAULT_MAX_BYTES // per_point)
    else:
        chunk = int(chunk_size)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    chunk = min(chunk, n)

    h_pool = entr(pool.mean(axis=1)).sum(axis=-1)  # (N,)
    h_target = entr(target.mean(axis=1)).sum(axis=-1).mean()  # scalar, mean over M

    # (T, M*C): column m*C + c' holds p(y* = c' | x*_m, theta_t) over t.
    right = np.ascontiguousarray(target.transpose(1, 0, 2).reshape(t, m * c), dtype=work)
    right /= t  # fold the mean over samples into the matmul
    joint_buf = np.empty((chunk * c, m * c), dtype=work)
    log_buf = np.empty_like(joint_buf) if buffers == 2 else None
    tiny = np.finfo(work).tiny
    h_joint = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk):
        block = pool[start : start + chunk]  # (n_b, T, C)
        nb = block.shape[0]
        # (n_b*C, T): row i*C + c holds p(y = c | x_i, theta_t) over t.
        left = block.transpose(0, 2, 1).reshape(nb * c, t).astype(work, copy=False)
        joint = np.matmul(left, right, out=joint_buf[: nb * c])  # p(y=c, y*=c' | x_i, x*_m)
        if log_buf is None:
            plogp = entr(joint, out=joint)  # -J log J, with 0 log 0 = 0
        else:
            # Entries are sums of products of probabilities, so >= 0; tiny only guards log(0).
            plogp = np.maximum(joint, tiny, out=log_buf[: nb * c])
            np.log(plogp, out=plogp)
            plogp *= joint
            np.negative(plogp, out=plogp)  # a cheap pass next to the log
        # Sum over (c, m, c') per pool point gives sum_m H[joint_m]; divide by M for the mean.
        h_joint[start : start + nb] = plogp.reshape(nb, -1).sum(axis=1, dtype=np.float64) / m
    return np.maximum(h_pool + h_target - h_joint, 0.0)
