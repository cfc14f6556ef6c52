"""How often a round's batch labels two copies of one image, per strategy, on a repeated pool.

With ``dataset.repeat=R`` the pool is R blocks of the same ``N`` training images, so pool index
``i`` shows image ``i % N``. Reads a sweep's tf_al metrics folder (CSVs + ``.meta.json``):

    python benchmarks/repeated_picks.py multirun/.../metrics --images 1348

``--images`` is the training pool size before repeating (``data.train_size`` / R in MLflow).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from al_experiments import ExperimentSuitMetrics


def repeated_picks(folder: Path, images: int) -> dict[str, np.ndarray]:
    """Per query function, the number of repeated images in each round's batch."""
    suit = ExperimentSuitMetrics(str(folder))
    counts: dict[str, list[int]] = defaultdict(list)
    for experiment in suit.read_meta()["experiments"]:
        for row in suit.read(experiment["experiment_name"]):
            picked = [int(i) % images for i in json.loads(row["indices_selected"])]
            counts[experiment["query_fn"]].append(len(picked) - len(set(picked)))
    return {query: np.asarray(values) for query, values in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics_dir", type=Path)
    parser.add_argument("--images", type=int, required=True, help="training images before repeating")
    args = parser.parse_args()
    print(f"{'strategy':<14} {'batches':>7} {'with a repeated image':>22} {'repeats per batch':>18}")
    for query, repeats in sorted(repeated_picks(args.metrics_dir, args.images).items()):
        print(f"{query:<14} {len(repeats):>7} {np.mean(repeats > 0):>22.0%} {repeats.mean():>18.2f}")


if __name__ == "__main__":
    main()
