"""Would scoring and test prediction gain from XLA, as training did? The digits MLP (64-128-10,
dropout 0.5) scores a pool of 1,200 digits by BALD at T = 20 and averages a test set of 540 at
T = 10 (the digits protocol's sizes), through the ``Sampler``'s compiled function as it is (the
graph path) and through the same function compiled by XLA: with the dropout masks of Keras'
default generator or of Philox (which training uses under XLA), on the real rows (a program per
shape: the best case) or padded to 2,048 and 1,024 rows (one program for every round, as a
fixed-shape path would need). Each figure is the median of 30 calls after the first (which
traces and compiles); the graph path runs before and after each XLA variant.
Usage: python benchmarks/xla_scoring.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def median_seconds(fn, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    from al_experiments.utils.quiet_tensorflow import import_tensorflow

    tf = import_tensorflow()
    import keras
    from sklearn.datasets import load_digits

    from al_experiments import networks
    from al_experiments.acquisition.graph_scores import graph_reduction
    from al_experiments.acquisition import get_query
    from al_experiments.wrapper import sampling

    x = (load_digits().data / 16.0).astype(np.float32)
    keras.utils.set_random_seed(0)
    net = networks.mlp(input_shape=[64], num_classes=10, hidden_units=[128], dropout=0.5)
    pool, test = x[:1200], x[1200:1740]
    bald = graph_reduction(get_query("bald"), 10)
    compiled_function, keep_mask = sampling.compiled_function, sampling.keep_mask

    def measure(xla: bool, generator: str | None, padded: bool) -> tuple[float, float, float]:
        if xla:  # the Sampler's functions built with jit_compile, and the masks' generator
            sampling.compiled_function = lambda fn=None, **options: compiled_function(fn, jit_compile=True, **options)
            if generator:
                sampling.keep_mask = lambda shape, layer, rate, alg="auto_select": keep_mask(shape, layer, rate,
                                                                                             generator)
        try:
            sampler = sampling.Sampler(net, stochastic=True)
            rows_pool, rows_test = (2048, 1024) if padded else (len(pool), len(test))
            p = tf.constant(np.resize(pool, (rows_pool, 64)))
            t = tf.constant(np.resize(test, (rows_test, 64)))
            # One compiled call each, as a round makes them (without the host-side checks around them).
            scores = sampler._function(20, bald)  # noqa: SLF001
            means = sampler._function(10, sampling.mean_over_samples)  # noqa: SLF001
            began = time.perf_counter()
            scores(p), means(t)
            first = time.perf_counter() - began
        finally:
            sampling.compiled_function, sampling.keep_mask = compiled_function, keep_mask
        return median_seconds(lambda: scores(p).numpy()), median_seconds(lambda: means(t).numpy()), first

    print("| path | BALD, 1,200 x T = 20 (ms) | test mean, 540 x T = 10 (ms) | first calls (s) |\n|---|---|---|---|")
    for name, variant in (("XLA, Philox masks, real rows", (True, "philox", False)),
                          ("XLA, Philox masks, padded", (True, "philox", True)),
                          ("XLA, default generator, padded", (True, None, True))):
        for label, args in (("graph path", (False, None, False)), (name, variant)):
            score, mean, first = measure(*args)
            print(f"| {label} | {score * 1e3:.1f} | {mean * 1e3:.1f} | {first:.2f} |", flush=True)


if __name__ == "__main__":
    main()
