"""BatchBALD (Kirsch, van Amersfoort and Gal, 2019) as pure numpy/scipy array math.

Greedy batch selection that maximises the mutual information between the labels of the whole
batch and the model parameters, ``I(y_1, ..., y_B; theta)``. At step ``i`` it adds the point ``x``
that maximises ``H(y_sel, y_x) - H(y_x | theta) - sum_sel H(y_s | theta)``; the first pick is the
BALD argmax. Input are consistent predictive samples ``probs`` of shape ``(N, T, C)``: sample ``t``
of every point must come from the same parameter draw (e.g. one set of dropout masks for the
whole pool), otherwise the joint entropy is meaningless.

The joint entropy ``H(y_sel, y_x)`` is computed

* exactly while ``C ** n_sel <= num_samples``, from the table of joint probabilities
  ``P[config, t] = prod_s p(y_s = config_s | theta_t)`` over all ``C ** n_sel`` label
  configurations of the selected points (extended by one outer product per added point);
* beyond that, from ``num_samples // T`` label configurations drawn from each ``theta_t`` (at
  least one each) with importance weights ``1 / q(config)``, ``q`` the mean over ``T``; the
  configurations are drawn afresh whenever a point is added. A configuration drawn several times
  is scored once with its count as weight (the same sum): confident predictions draw few
  distinct configurations.

Either way, the joint probabilities of the selected configurations with every candidate's labels
are one matrix product ``(candidates * C, T) @ (T, configs)`` followed by ``-sum p log p``. Both
run blockwise over candidates and configurations so that extra memory stays at a few tens of MiB
beyond a float32 copy of the candidates' samples, however large the pool is. With ``lazy=True``
only the candidates whose gain can still beat the best one are scored (see :func:`batch_bald`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy.special import entr

from al_experiments.validation import RNG, WHOLE_AT_LEAST_0, WHOLE_AT_LEAST_1, Boolean, optional, validate_params

from ..scores import bald, check_probs
from ..ranking import top_k

__all__ = [
    "batch_bald",
    "batch_bald_with_scores",
    "joint_entropy_exact",
    "joint_mutual_information",
]

# Elements of one (candidates * C, configurations) block, i.e. two float32 buffers of 4 MiB:
# much smaller blocks starve the GEMM, much larger ones push the log/dot passes out of the
# cache; a new size is measured (benchmarks/bench_batch_bald.py) on the machines it runs on.
_BLOCK_ELEMS = 1 << 20
# Configurations per block at most; more are split into equal parts.
_MAX_CONFIG_BLOCK = 4096

# Lazy greedy: candidates scored in the first chunk of a step, doubling in each further chunk up
# to the last size (a step that a few candidates settle scores few; one that needs many runs
# large, efficient GEMMs), and the margin by which the best gain must beat a bound before that
# candidate is skipped (well above the dtype's rounding error).
_LAZY_CHUNKS = (32, 256)
_LAZY_TOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-8}

# Per dtype: (flush, eps). Entries below `flush` are set to 0 before the matrix product, so that
# no product of two entries is subnormal (a subnormal operand slows a float32 GEMM by orders of
# magnitude); `eps` is added to every joint probability so that log never sees 0. Both change an
# entropy by far less than the dtype's rounding error.
_GUARDS = {
    np.dtype(np.float32): (1e-18, 1e-30),
    np.dtype(np.float64): (1e-150, 1e-290),
}


# BatchBALD's settings: joint label configurations per step, the top-BALD points kept (None:
# all), lazy greedy or not.
OPTIONS = {"num_samples": WHOLE_AT_LEAST_1, "prefilter": optional(WHOLE_AT_LEAST_1), "lazy": Boolean()}


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "rng": RNG, **OPTIONS})
def batch_bald(
    probs: ArrayLike,
    batch_size: int,
    *,
    num_samples: int = 10_000,
    rng: np.random.Generator | int | None = None,
    prefilter: int | None = None,
    dtype: DTypeLike = np.float32,
    lazy: bool = True,
) -> np.ndarray:
    """BatchBALD batch: int64 positions into the ``N`` points of ``probs``, best first.

    ``probs`` are consistent predictive samples of shape ``(N, T, C)``. Returns
    ``min(batch_size, N)`` distinct positions in greedy order; the first is the BALD argmax (ties
    to the lowest position). ``num_samples`` bounds the number of joint label configurations:
    the joint entropy is exact while ``C ** n_selected <= num_samples`` and importance-sampled
    beyond (``max(1, num_samples // T)`` configurations per sample). ``rng`` (a
    ``numpy.random.Generator``, a seed or ``None``) drives that sampling, so a fixed seed gives
    a fixed batch. ``prefilter=m`` only considers the ``m`` points with the highest BALD scores,
    as the original BatchBALD code did to cut its cost. ``dtype`` is the precision of the
    matrix products and entropies (float32: about twice as fast, scores to ~1e-5 nats; float64).

    ``lazy=True`` (the default; Minoux's lazy greedy) evaluates, at each step, only the
    candidates whose gain can still win: the
    gain ``I(y_x; theta | y_sel)`` never grows as the batch grows (conditioning reduces entropy),
    so a candidate's last computed gain (BALD at first) bounds its current one. Candidates are
    scored in decreasing order of that bound, 32 at first and twice as many in each further
    chunk up to 256, until the best gain found beats every remaining bound by a small margin (1e-3 nats in float32). In the exact regime
    this is the same batch as ``lazy=False`` up to that margin, at a fraction of the work; in
    the sampled regime the bound holds for the true gains but not for every noisy estimate, so
    a candidate within the estimate's noise of the winner may be skipped.
    """
    return batch_bald_with_scores(
        probs,
        batch_size,
        num_samples=num_samples,
        rng=rng,
        prefilter=prefilter,
        dtype=dtype,
        lazy=lazy,
    )[0]


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "rng": RNG, **OPTIONS})
def batch_bald_with_scores(
    probs: ArrayLike,
    batch_size: int,
    *,
    num_samples: int = 10_000,
    rng: np.random.Generator | int | None = None,
    prefilter: int | None = None,
    dtype: DTypeLike = np.float32,
    lazy: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`batch_bald` plus the greedy objective: ``(positions, scores)``.

    ``scores[i]`` (float64) is the estimated mutual information ``I(y_{b_0..b_i}; theta)`` of the
    first ``i + 1`` selected points, i.e. the maximum the greedy step ``i`` found; ``scores[0]``
    is the BALD score of the first point. Same arguments as :func:`batch_bald`.
    """
    p = check_probs(probs)
    n, t, c = p.shape
    num_samples = int(num_samples)
    dt = _check_dtype(dtype)
    gen = np.random.default_rng(rng)
    k = min(int(batch_size), n)
    if k == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)

    bald_scores = _chunked(bald, p)
    if prefilter is None:
        cand = np.arange(n, dtype=np.int64)
    else:
        m = int(prefilter)
        if m < k:
            raise ValueError(
                f"prefilter={m} keeps fewer candidates than batch_size={k}: pass prefilter >= "
                "batch_size, or None to consider every point."
            )
        cand = np.sort(top_k(bald_scores, m))

    # First pick: BALD itself, in float64, so it is exactly functions.bald's argmax.
    first = int(np.argmax(bald_scores))
    chosen = [first]
    scores = [float(bald_scores[first])]
    if k == 1:
        return np.array(chosen, dtype=np.int64), np.array(scores)

    pc = p if prefilter is None else p[cand]
    h_cond = _conditional_entropy(pc)
    row_sums = pc.sum(axis=2)  # (n_cand, T); 1 for softmax outputs
    xt = _candidate_matrix(pc, dt)
    del pc
    taken = np.zeros(cand.size, dtype=bool)
    bound = bald_scores[cand].copy() if lazy else None  # BALD is the step-0 gain
    taken[np.searchsorted(cand, first)] = True
    h_sel = _conditional_entropy(p[[first]])[0]

    # Joint table (C ** n_sel, T) of the selected points while it fits in num_samples rows.
    exact = p[first].T.copy() if c <= num_samples else None
    for _ in range(1, k):
        n_sel = len(chosen)
        if exact is not None:
            op = _exact_operator(exact, dt)
        else:
            op = _sampled_operator(p[chosen], num_samples, gen, dt)
        # delta = H(y_x | y_sel) - H(y_x | theta): the objective less a constant of this step.
        if lazy:
            delta = _lazy_gains(op, xt, row_sums, h_cond, c, taken, bound, _LAZY_TOL[dt])
        else:
            delta = _joint_entropies(op, xt, row_sums, c) - op.h_sel - h_cond
            delta[taken] = -np.inf
        j = int(np.argmax(delta))  # first maximum: lowest position among ties
        taken[j] = True
        pos = int(cand[j])
        chosen.append(pos)
        scores.append(float(delta[j] + op.h_sel - h_sel))
        h_sel += h_cond[j]
        if exact is not None and c ** (n_sel + 1) <= num_samples:
            exact = (exact[:, None, :] * p[pos].T[None, :, :]).reshape(-1, t)
        else:
            exact = None
    return np.array(chosen, dtype=np.int64), np.array(scores)


@validate_params({"num_samples": WHOLE_AT_LEAST_1, "rng": RNG})
def joint_mutual_information(
    selected: ArrayLike,
    candidates: ArrayLike,
    *,
    num_samples: int = 10_000,
    rng: np.random.Generator | int | None = None,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """``I(y_sel, y_x; theta)`` for every candidate ``x``: the objective BatchBALD maximises.

    ``selected`` ``(n, T, C)`` are the points already in the batch (``n`` may be 0) and
    ``candidates`` ``(m, T, C)`` the points to score, with the same consistent samples. Returns
    ``(m,)`` float64 values computed the way :func:`batch_bald`'s greedy step does: exact while
    ``C ** n <= num_samples``, importance-sampled with ``rng`` beyond.
    """
    sel = check_probs(selected)
    cands = check_probs(candidates)
    if sel.shape[1:] != cands.shape[1:]:
        raise ValueError(
            f"selected points have (T, C) = {sel.shape[1:]} but candidates have "
            f"{cands.shape[1:]}: pass samples of the same T draws and C classes for both."
        )
    num_samples = int(num_samples)
    dt = _check_dtype(dtype)
    n, t, c = sel.shape
    if c**n <= num_samples:
        table = np.ones((1, t))
        for s in range(n):
            table = (table[:, None, :] * sel[s].T[None, :, :]).reshape(-1, t)
        op = _exact_operator(table, dt)
    else:
        op = _sampled_operator(sel, num_samples, np.random.default_rng(rng), dt)
    h_joint = _joint_entropies(op, _candidate_matrix(cands, dt), cands.sum(axis=2), c)
    h_sel = _conditional_entropy(sel).sum() if n else 0.0
    return h_joint - _conditional_entropy(cands) - h_sel


def joint_entropy_exact(probs_subset: ArrayLike) -> float:
    """Exact joint entropy ``H(y_1, ..., y_n)`` (nats) of a few points by full enumeration.

    ``probs_subset`` has shape ``(n, T, C)``; the joint distribution is the mean over ``T`` of
    the product of the points' class probabilities. Builds all ``C ** n`` configurations, so it is
    meant for small ``n`` (checks and tests); raises ``ValueError`` beyond 2**24 configurations.
    """
    p = check_probs(probs_subset)
    n, t, c = p.shape
    if c**n > 1 << 24:
        raise ValueError(
            f"{n} points with {c} classes have {c}**{n} joint configurations, too many to "
            "enumerate: use joint_mutual_information, which samples them."
        )
    table = np.ones((1, t))
    for s in range(n):
        table = (table[:, None, :] * p[s].T[None, :, :]).reshape(-1, t)
    return float(entr(table.mean(axis=1)).sum())


# --- internals --------------------------------------------------------------------------------


class _Operator:
    """The selected points' side of the joint entropy for one greedy step.

    ``at`` is (T + 1, M) in the compute dtype: column m holds the weights that turn a candidate's
    samples into its joint probabilities with configuration m (a last row of ones picks up the
    candidates' eps column). The joint entropy of candidate x is
    ``-kappa * (sum_{m,c} n_m G log G + row_sums_x . w)`` with ``G = X_x @ at`` and ``n_m`` the
    configuration's count.
    """

    __slots__ = ("at", "counts", "h_sel", "kappa", "w")

    def __init__(self, at: np.ndarray, kappa: float, w: np.ndarray | None, h_sel: float,
                 counts: np.ndarray | None = None):
        self.at, self.kappa, self.w = at, kappa, w
        self.counts = counts  # how often each column's configuration was drawn (None: once)
        # H(y_sel) by the same estimator: subtracting it leaves H(y_x | y_sel), whose sampled
        # estimate lacks the noise the joint and the marginal share.
        self.h_sel = h_sel


def _exact_operator(table: np.ndarray, dt: np.dtype) -> _Operator:
    """Operator for the exact table ``(C ** n, T)`` of joint probabilities: ``G`` is ``p(config,
    y_x)`` itself, so kappa = 1 and there is no correction term."""
    t = table.shape[1]
    h_sel = float(entr(table.mean(axis=1)).sum())
    return _Operator(_with_ones_row(table.T / t, dt), 1.0, None, h_sel)


def _sampled_operator(
    p_sel: np.ndarray, num_samples: int, gen: np.random.Generator, dt: np.dtype
) -> _Operator:
    """Operator from configurations sampled per theta_t, importance-weighted by 1 / q.

    With ``r = p(config, y_x) / q(config)``, the estimate
    ``-(1/M) sum_m sum_c p log p / q`` equals ``-(1/M) (sum r log r + sum_m log q_m sum_c r)``;
    the second sum is linear in the candidate's samples, so it folds into one T-vector ``w``.
    """
    n, t, c = p_sel.shape
    per = max(1, num_samples // t)  # >= 1 even when num_samples < T
    m = per * t
    theta = np.repeat(np.arange(t), per)  # the parameter draw each configuration comes from
    cdf = np.cumsum(p_sel, axis=2)[:, theta, :]  # (n, M, C)
    u = gen.random((n, m)) * cdf[:, :, -1]
    # Inverse CDF: the first class whose cumulative mass exceeds u (never a zero-mass class).
    labels = np.minimum((cdf <= u[:, :, None]).sum(axis=2), c - 1)
    del cdf, u
    labels, counts = _distinct_columns(labels, c)
    u_cols = labels.shape[1]
    with np.errstate(divide="ignore"):
        # (n, C, T): a configuration's log-probabilities over t are a gather of whole rows.
        log_pt = np.ascontiguousarray(np.log(p_sel).transpose(0, 2, 1))  # -inf where p = 0
    log_joint = np.zeros((u_cols, t))  # log p(config_u | theta_t)
    for s in range(n):
        log_joint += log_pt[s][labels[s]]
    # log q = logsumexp over t less log T, and p(config | theta_t) / (q T) = exp(. - max) / sum:
    # one exponential pass gives both.
    top = log_joint.max(axis=1)
    ok = np.isfinite(top)  # q = 0 only for all-zero probability rows: such configs get weight 0
    if ok.all():
        ratio = np.exp(np.subtract(log_joint, top[:, None], out=log_joint), out=log_joint)
    else:
        ratio = np.zeros((u_cols, t))
        ratio[ok] = np.exp(log_joint[ok] - top[ok, None])
    total = ratio.sum(axis=1)
    ratio /= np.where(ok, total, 1.0)[:, None]
    log_q = np.zeros(u_cols)
    log_q[ok] = np.log(total[ok]) + top[ok] - math.log(t)
    weighted_log_q = log_q * counts
    w = ratio.T @ weighted_log_q
    at = _with_ones_row(ratio.T, dt)
    return _Operator(at, 1.0 / m, w, float(-weighted_log_q.sum() / m), counts.astype(dt))


def _distinct_columns(labels: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct columns of the (n, M) label configurations, in a fixed order, and how often
    each occurs."""
    n = labels.shape[0]
    if n * math.log2(c) < 62:  # one int64 code per configuration
        codes = np.zeros(labels.shape[1], dtype=np.int64)
        for s in range(n):
            codes = codes * c + labels[s]
        _, first, counts = np.unique(codes, return_index=True, return_counts=True)
        return labels[:, first], counts.astype(np.float64)
    distinct, counts = np.unique(labels, axis=1, return_counts=True)
    return distinct, counts.astype(np.float64)


def _with_ones_row(a_t: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Cast the (T, M) weights to ``dt``, flush tiny entries, and append the row of ones."""
    flush, _ = _GUARDS[dt]
    t, m = a_t.shape
    out = np.empty((t + 1, m), dtype=dt)
    out[:t] = a_t
    body = out[:t]
    body[body < flush] = 0
    out[t] = 1
    return out


def _candidate_matrix(pc: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Candidates' samples as ``(n_cand * C, T + 1)`` in ``dt``: row ``x * C + c`` holds
    ``p(y_x = c | theta_t)`` over t, then eps."""
    n, t, c = pc.shape
    flush, eps = _GUARDS[dt]
    x = np.empty((n * c, t + 1), dtype=dt)
    x.reshape(n, c, t + 1)[:, :, :t] = pc.transpose(0, 2, 1)  # cast on the fly, no float64 copy
    body = x[:, :t]
    body[body < flush] = 0
    x[:, t] = eps
    return x


def _joint_entropies(op: _Operator, xt: np.ndarray, row_sums: np.ndarray, c: int) -> np.ndarray:
    """Joint entropy ``H(y_sel, y_x)`` (float64) for every candidate row block of ``xt``."""
    at, counts = op.at, op.counts
    m = at.shape[1]
    kc_total = xt.shape[0]
    nblk = -(-m // _MAX_CONFIG_BLOCK)
    mb = -(-m // nblk)
    kc = max(c, (_BLOCK_ELEMS // mb) // c * c)
    kc = min(kc, kc_total)
    buf_g = np.empty(kc * mb, dtype=xt.dtype)
    buf_l = np.empty(kc * mb, dtype=xt.dtype)
    acc = np.zeros(kc_total, dtype=np.float64)
    for m0 in range(0, m, mb):
        a_blk = at[:, m0 : m0 + mb]
        width = a_blk.shape[1]
        for k0 in range(0, kc_total, kc):
            x_blk = xt[k0 : k0 + kc]
            rows = x_blk.shape[0]
            g = buf_g[: rows * width].reshape(rows, width)
            lg = buf_l[: rows * width].reshape(rows, width)
            np.matmul(x_blk, a_blk, out=g)  # joint probabilities (or their ratios to q)
            np.log(g, out=lg)
            if counts is None:
                acc[k0 : k0 + rows] += np.vecdot(g, lg)  # sum over configurations of G log G
            else:
                np.multiply(lg, g, out=lg)
                acc[k0 : k0 + rows] += lg @ counts[m0 : m0 + mb]  # ... each times its count
    s1 = acc.reshape(-1, c).sum(axis=1)
    if op.w is not None:
        s1 += row_sums @ op.w
    return -op.kappa * s1


def _lazy_gains(
    op: _Operator,
    xt: np.ndarray,
    row_sums: np.ndarray,
    h_cond: np.ndarray,
    c: int,
    taken: np.ndarray,
    bound: np.ndarray,
    tol: float,
) -> np.ndarray:
    """Gains ``H(y_x | y_sel) - H(y_x | theta)`` of the candidates that can still win, -inf for
    the rest; ``bound`` (upper bounds on the gains) is tightened in place to the new values."""
    delta = np.full(bound.size, -np.inf)
    avail = np.flatnonzero(~taken)
    order = avail[np.argsort(-bound[avail], kind="stable")]  # ties: lower position first
    best, start = -np.inf, 0
    size, largest = _LAZY_CHUNKS
    while start < order.size:
        idx = order[start : start + size]
        size = min(2 * size, largest)
        rows = (idx[:, None] * c + np.arange(c)).ravel()
        d = _joint_entropies(op, xt[rows], row_sums[idx], c) - op.h_sel - h_cond[idx]
        delta[idx] = d
        bound[idx] = d
        best = max(best, float(d.max()))
        start += idx.size
        # order[start] has the largest bound not yet scored.
        if start < order.size and bound[order[start]] + tol < best:
            break
    return delta


def _conditional_entropy(p: np.ndarray) -> np.ndarray:
    """``mean_t H(y | theta_t)`` per point (float64, 0 log 0 = 0)."""
    return _chunked(lambda q: entr(q).sum(axis=2).mean(axis=1), p)


def _chunked(per_point, p: np.ndarray) -> np.ndarray:
    """Apply a per-point (N, T, C) -> (N,) function in slices of about 8 MiB, so that its
    (slice, T, C) temporaries never add a second copy of the pool; per-point arithmetic is the
    same in any slice, so the result is bitwise that of one call."""
    n, t, c = p.shape
    step = max(1, (1 << 20) // max(1, t * c))
    if n <= step:
        return per_point(p)
    return np.concatenate([per_point(p[i : i + step]) for i in range(0, n, step)])


def _check_dtype(dtype: DTypeLike) -> np.dtype:
    """The compute dtype, float32 or float64 only."""
    dt = np.dtype(dtype)
    if dt not in _GUARDS:
        raise ValueError(
            f"dtype must be float32 or float64 (the precision of the matrix products); "
            f"got {dt}: pass np.float32 for speed or np.float64 for accuracy."
        )
    return dt
