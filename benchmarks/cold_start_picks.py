"""What the large-pool settings of TypiClust and ProbCover change in their picks.

Both run on Fashion-MNIST's training images (Debian's copy), the first --pool of them, raw
pixels scaled to unit length (``features=input``, as an initial-set draw uses them), from no
labelled point.

* ProbCover, ``subsample``: the batch is picked on a uniform sample of S candidates (the radius
  estimated on the sample too) and scored by the fraction of the whole pool it covers at the
  radius the whole pool gives (ball radius by the paper's 95 % purity rule, k-means seed 0).
  S = the pool is the exact method.
* TypiClust, k-means above 50 clusters: a batch of --typiclust-batch (so as many clusters) with
  full k-means against mini-batch k-means (what ``kmeans_labels`` runs above 50 clusters, as the
  authors' code does), scored by the accuracy of a 1-nearest-neighbour classifier on the 10,000
  test images that knows only the batch's labels, and the seconds of the selection; a random
  batch gives the scale.

Medians and [min, max] over --seeds seeds. Usage: python benchmarks/cold_start_picks.py
[--pool 30000] [--subsamples 2500,5000,10000,20000] [--batches 10,100] [--typiclust-batch 100]
[--seeds 3] [--only probcover,typiclust]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from al_experiments.acquisition.batch import features as feature_sets
from al_experiments.acquisition.batch.coreset import DEFAULT_CHUNK_SIZE, min_sq_dist_to_set
from al_experiments.acquisition.batch.probcover import probcover, purity_delta
from al_experiments.acquisition.batch.typiclust import typiclust
from al_experiments.data import load_fashion_mnist


def spread(values) -> str:
    return f"{np.median(values):.4f} [{min(values):.4f}, {max(values):.4f}]"


def probcover_coverage(x: np.ndarray, subsamples: list[int], batches: list[int], seeds: int) -> None:
    radius = purity_delta(x, 10, rng=0)
    print(f"ProbCover on {len(x):,} points; the whole pool's radius {radius:.4f}")
    print("| batch | candidates sampled | coverage of the pool | radius on the sample | seconds |")
    print("|---:|---:|---|---|---:|")
    for batch in batches:
        for size in [*subsamples, len(x)]:
            covered, radii, seconds = [], [], []
            for seed in range(seeds):
                began = time.perf_counter()
                picks = probcover(x, None, batch, rng=seed, num_classes=10, subsample=size)
                seconds.append(time.perf_counter() - began)
                # The radius probcover estimated: its generator draws the sample, then k-means.
                generator = np.random.default_rng(seed)
                kept = np.sort(generator.choice(len(x), size, replace=False)) if size < len(x) else slice(None)
                radii.append(purity_delta(x[kept], 10, rng=generator))
                distances = min_sq_dist_to_set(x, x[picks], DEFAULT_CHUNK_SIZE)
                covered.append(float(np.mean(distances <= radius ** 2)))
            label = f"{size:,}" + (" (all)" if size == len(x) else "")
            print(f"| {batch} | {label} | {spread(covered)} | {spread(radii)} | {np.median(seconds):.1f} |",
                  flush=True)


def typiclust_accuracy(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, batch: int,
                       seeds: int) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    print(f"TypiClust on {len(x):,} points, a batch of {batch}: 1-NN test accuracy from the batch's labels")
    print("| k-means | accuracy | seconds |")
    print("|---|---|---:|")
    default = feature_sets.MINIBATCH_ABOVE_CLUSTERS
    for name, above in (("full (Lloyd)", 10 ** 9), ("mini-batch (default above 50 clusters)", default)):
        feature_sets.MINIBATCH_ABOVE_CLUSTERS = above
        accuracy, seconds = [], []
        try:
            for seed in range(seeds):
                began = time.perf_counter()
                picks = typiclust(x, None, batch, rng=seed)
                seconds.append(time.perf_counter() - began)
                classifier = KNeighborsClassifier(n_neighbors=1).fit(x[picks], y[picks])
                accuracy.append(float(classifier.score(x_test, y_test)))
        finally:
            feature_sets.MINIBATCH_ABOVE_CLUSTERS = default
        print(f"| {name} | {spread(accuracy)} | {np.median(seconds):.1f} |", flush=True)
    accuracy = []
    for seed in range(seeds):  # the scale: a uniformly drawn batch
        picks = np.random.default_rng(seed).choice(len(x), batch, replace=False)
        accuracy.append(float(KNeighborsClassifier(n_neighbors=1).fit(x[picks], y[picks]).score(x_test, y_test)))
    print(f"| none: a random batch | {spread(accuracy)} | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=30_000)
    parser.add_argument("--subsamples", default="2500,5000,10000,20000")
    parser.add_argument("--batches", default="10,100")
    parser.add_argument("--typiclust-batch", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="probcover,typiclust")
    args = parser.parse_args()

    data = load_fashion_mnist()
    flat = feature_sets.flat_features(data.x[: args.pool])
    x = feature_sets.l2_normalise(flat)
    only = args.only.split(",")
    if "probcover" in only:
        probcover_coverage(x, [int(s) for s in args.subsamples.split(",") if int(s) < len(x)],
                           [int(b) for b in args.batches.split(",")], args.seeds)
    if "typiclust" in only:
        x_test = feature_sets.l2_normalise(feature_sets.flat_features(data.x_test))
        typiclust_accuracy(x, data.y[: args.pool], x_test, data.y_test, args.typiclust_batch, args.seeds)


if __name__ == "__main__":
    main()
