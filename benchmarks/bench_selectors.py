"""Timing of the batch selectors on random inputs: figures only, no assertions.

Default sizes: N = 10,000 candidates, C = 10 classes, batch 10.

* EPIG (``epig_scores``) with T = 100 consistent samples and M = 100 target points, in float64
  and float32, followed by top-k.
* BADGE (``badge``) with D = 128 embeddings.
* Core-set (``k_center_greedy``) with D = 128 and 1,000 labelled points.
* PowerBALD (``stochastic_top_k`` on BALD scores of the EPIG pool samples), for scale.
* The cold-start selectors TypiClust and ProbCover on the embeddings, 20 of them labelled.

Each row is the median wall time of --repeats runs (after one warm-up run), and the peak memory
the call allocates beyond its inputs, measured with tracemalloc (numpy reports its buffers to
it) in one extra run that is not timed. Usage:

    python benchmarks/bench_selectors.py [--quick] [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc

import numpy as np

from al_experiments.acquisition.batch.badge import badge
from al_experiments.acquisition.batch.coreset import k_center_greedy
from al_experiments.acquisition.batch.epig import epig_scores
from al_experiments.acquisition.batch.probcover import probcover
from al_experiments.acquisition.batch.typiclust import typiclust
from al_experiments.acquisition.scores import bald
from al_experiments.acquisition.ranking import top_k
from al_experiments.acquisition.batch.stochastic import stochastic_top_k


def measure(fn, repeats: int) -> tuple[float, float]:
    """Median seconds over ``repeats`` timed calls (after a warm-up) and peak MiB of one call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (N=1,000, T=M=20)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    if args.quick:
        n, t, m, d, n_labelled = 1_000, 20, 20, 32, 100
    else:
        n, t, m, d, n_labelled = 10_000, 100, 100, 128, 1_000
    c, batch = 10, 10
    rng = np.random.default_rng(0)
    pool = rng.dirichlet(np.ones(c) * 0.3, size=(n, t))
    target = rng.dirichlet(np.ones(c) * 0.3, size=(m, t))
    pool32, target32 = pool.astype(np.float32), target.astype(np.float32)
    probs = pool.mean(axis=1)
    embeddings = rng.normal(size=(n, d))
    labelled = rng.normal(size=(n_labelled, d))
    bald_scores = bald(pool)

    cases = [
        (f"EPIG float64 (T={t}, M={m})", lambda: top_k(epig_scores(pool, target), batch)),
        (f"EPIG float32 (T={t}, M={m})",
         lambda: top_k(epig_scores(pool32, target32, dtype=np.float32), batch)),
        (f"BADGE (D={d})", lambda: badge(probs, embeddings, batch, rng=0)),
        (f"Core-set (D={d}, {n_labelled} labelled)",
         lambda: k_center_greedy(embeddings, labelled, batch)),
        ("PowerBALD (scores given)", lambda: stochastic_top_k(bald_scores, batch, rng=0)),
        (f"TypiClust (D={d})", lambda: typiclust(embeddings[20:], embeddings[:20], batch, rng=0)),
        (f"ProbCover (D={d})", lambda: probcover(embeddings[20:], embeddings[:20], batch, rng=0, num_classes=c)),
    ]
    rows = []
    print(f"N = {n:,} candidates, C = {c}, batch {batch}, median of {args.repeats} runs")
    print(f"{'selector':<34} {'median s':>10} {'peak MiB':>10}")
    for name, fn in cases:
        seconds, peak = measure(fn, args.repeats)
        rows.append({"selector": name, "median_s": seconds, "peak_mib": peak})
        print(f"{name:<34} {seconds:>10.4f} {peak:>10.1f}")
    err = np.abs(epig_scores(pool32, target32, dtype=np.float32) - epig_scores(pool, target)).max()
    print(f"EPIG float32 vs float64: max abs difference {err:.2e} nats")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": n, "c": c, "t": t, "m": m, "d": d, "batch": batch,
                       "n_labelled": n_labelled, "rows": rows, "epig_float32_max_abs_err": err},
                      fh, indent=2)


if __name__ == "__main__":
    main()
