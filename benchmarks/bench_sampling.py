"""Independent vs consistent MC-dropout sampling, side by side on one machine (figures only).

* ``predictive_samples``: the compiled ``Sampler`` (chunk tiled T times, Keras draws one mask per
  row, so the T samples of two points are unrelated draws).
* ``consistent_samples``: the consistent twin (one mask per sample t shared by every point, drawn
  once per call from (seed, t); see ``wrapper/consistent.py``).

* BALD scores of the pool from each (``query.samples=independent|consistent``): reduced inside
  the compiled call, so only N scores leave it.

Cases: the digits MLP (64-128-10, dropout 0.5) on N = 10,000 tiled digits with T = 20 and 100,
and Gal et al.'s CNN (conf/model/mc_dropout_cnn.yaml: 32 4x4 filters twice, 2x2 max-pool,
dropout 0.25, dense 128, dropout 0.5) on N = 2,000 random 28x28 images with T = 20. Each figure
is the median of 3 timed calls after one warm-up call (which traces).
Usage: python benchmarks/bench_sampling.py [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def digits_pool(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype(np.float32)
    return np.resize(x, (n, x.shape[1]))  # the 1,797 digits tiled to n rows


def cases():
    import keras

    from al_experiments.networks import cnn, mlp

    keras.utils.set_random_seed(0)
    digits = mlp((64,), 10, hidden_units=(128,), dropout=0.5)
    images = np.random.default_rng(0).random((2000, 28, 28), dtype=np.float32)
    keras.utils.set_random_seed(0)
    gal = cnn((28, 28), 10, filters=32, kernel_size=4, pool_size=2, dense_units=128,
              conv_dropout=0.25, dense_dropout=0.5)
    pool = digits_pool(10_000)
    return [
        ("digits MLP 64-128-10", digits, pool, 20),
        ("digits MLP 64-128-10", digits, pool, 100),
        ("Gal et al. CNN 28x28", gal, images, 20),
    ]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: traces the compiled functions
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    import tensorflow as tf

    from al_experiments.acquisition.round import RoundView
    from al_experiments.pool import Pool
    from al_experiments.wrapper import McDropout

    def bald_scores(wrapper, inputs, samples, kind, seed):
        pool = Pool(inputs, np.zeros(len(inputs), dtype=np.int64))
        view = RoundView(wrapper, pool, np.arange(len(inputs)), np.random.default_rng(seed),
                         sample_size=samples, samples=kind)
        return view.scores("bald")

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    rows = []
    for name, network, inputs, samples in cases():
        wrapper = McDropout(network)
        seeds = iter(range(10_000))  # a new seed per consistent call, as per round
        independent = median_seconds(lambda: wrapper.predictive_samples(inputs, samples), args.repeats)
        consistent = median_seconds(lambda: wrapper.consistent_samples(inputs, samples, seed=next(seeds)),
                                    args.repeats)
        scores = {kind: median_seconds(lambda: bald_scores(wrapper, inputs, samples, kind, next(seeds)), args.repeats)
                  for kind in ("independent", "consistent")}
        rows.append({"network": name, "N": len(inputs), "T": samples, "independent_s": independent,
                     "consistent_s": consistent, "consistent_over_independent": consistent / independent,
                     "bald_independent_s": scores["independent"], "bald_consistent_s": scores["consistent"],
                     "bald_consistent_over_independent": scores["consistent"] / scores["independent"]})

    print(f"MC sampling on {device}, TF {tf.__version__}; median of {args.repeats} after a warm-up")
    header = (f"{'network':<22} {'N':>6} {'T':>4} {'independent s':>14} {'consistent s':>13} {'ratio c/i':>10}"
              f" {'BALD indep. s':>14} {'BALD consis. s':>15} {'ratio c/i':>10}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['network']:<22} {row['N']:>6} {row['T']:>4} {row['independent_s']:>14.3f} "
              f"{row['consistent_s']:>13.3f} {row['consistent_over_independent']:>10.2f} "
              f"{row['bald_independent_s']:>14.3f} {row['bald_consistent_s']:>15.3f} "
              f"{row['bald_consistent_over_independent']:>10.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
