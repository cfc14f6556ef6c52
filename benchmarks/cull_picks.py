"""What BatchBALD's cull (query.options.prefilter) changes in its batches on repeated digits.

The pool is the digits training split (70/30, stratified, seed 0) three times, every copy with
Gaussian noise of standard deviation 0.1, as the ``repeated_digits`` preset builds it. For each
seed and labelled-set size (20, 60 and 100 random pool points), an MC-dropout MLP 64-128-10 is
trained 200 epochs, and BatchBALD picks a batch of 10 on T = 10 consistent samples with each
cull size. Printed per cull: how many batches equal the uncull one, repeated images per batch
(picks showing an image already in the batch), and the joint mutual information of the batch
lost against the uncull one (estimated on the whole pool's samples with 100,000 configurations).

Usage: python benchmarks/cull_picks.py [--seeds 3] [--culls 1000,300,100,40,20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from al_experiments import Config, Pool  # noqa: E402
from al_experiments.acquisition import RoundView  # noqa: E402
from al_experiments.acquisition.batch.batch_bald import joint_mutual_information  # noqa: E402
from al_experiments.acquisition.builtin_batch import BUILTINS  # noqa: E402
from al_experiments.wrapper import McDropout  # noqa: E402

BATCH, SAMPLES, COPIES, NOISE = 10, 10, 3, 0.1


def repeated_digits() -> tuple[np.ndarray, np.ndarray, int]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    rng = np.random.default_rng(0)
    pool_x = np.concatenate([x_train + rng.normal(0, NOISE, x_train.shape).astype(np.float32)
                             for _ in range(COPIES)])
    return pool_x, np.tile(y_train, COPIES), len(x_train)


def trained(pool_x: np.ndarray, pool_y: np.ndarray, labelled: np.ndarray, seed: int) -> McDropout:
    keras.utils.set_random_seed(seed)
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                            keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    model = McDropout(net, Config(fit={"epochs": 200, "batch_size": 32}, query={"sample_size": SAMPLES}))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(pool_x[labelled], pool_y[labelled], epochs=200, verbose=0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--culls", default="1000,300,100,40,20")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    culls = [None] + [int(c) for c in args.culls.split(",")]
    pool_x, pool_y, images = repeated_digits()
    rows = []
    for seed in range(args.seeds):
        for size in (20, 60, 100):
            labelled = np.random.default_rng(100 + seed).choice(len(pool_x), size, replace=False)
            model = trained(pool_x, pool_y, labelled, seed)
            pool = Pool(pool_x, pool_y)
            pool.annotate(labelled)
            whole, uncull = None, None
            for cull in culls:
                view = RoundView(model, pool, pool.get_unlabeled_indices(), np.random.default_rng(seed),
                                 sample_size=SAMPLES, samples="consistent")
                chosen, _ = BUILTINS["batch_bald"](view, BATCH, np.random.default_rng(seed), prefilter=cull)
                if whole is None:
                    whole, uncull = view.joint_samples(), chosen
                picked = view.candidates[chosen] % images
                info = float(joint_mutual_information(whole[chosen[:-1]], whole[chosen[-1:]], num_samples=100_000,
                                                      rng=0)[0])
                rows.append({"seed": seed, "labelled": size, "cull": cull, "same": bool(np.array_equal(chosen, uncull)),
                             "repeats": BATCH - len(set(picked.tolist())), "joint_info": info})
    base = {(r["seed"], r["labelled"]): r["joint_info"] for r in rows if r["cull"] is None}
    print(f"| kept candidates (of {len(pool_x) - 100:,} to {len(pool_x) - 20:,}) | batches equal to the uncull one | "
          "repeated images per batch | joint information lost, mean / worst (nats) |")
    print("|---:|---:|---:|---:|")
    for cull in culls:
        mine = [r for r in rows if r["cull"] == cull]
        lost = [base[(r["seed"], r["labelled"])] - r["joint_info"] for r in mine]
        print(f"| {'all' if cull is None else f'{cull:,}'} | {sum(r['same'] for r in mine)} of {len(mine)} | "
              f"{statistics.mean(r['repeats'] for r in mine):.2f} | {statistics.mean(lost):.3f} / {max(lost):.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
