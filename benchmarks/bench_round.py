"""Speed figures for al-experiments, printed as a table and as JSON.

1. Round time against tf_al 0.1.1 on one protocol (benchmarks/protocol.py), side by side.
2. MC scoring against the compute floor: BALD scores for a 10,000-image pool with T = 20 through
   Gal et al.'s CNN, divided by one compiled deterministic forward pass over the same 200,000 inputs.
3. Memory: peak resident memory added by scoring a pool of 60,000 with T = 100 and 10 classes.
4. Overhead: share of a round spent outside fitting and forward passes.

tf_al runs in its own virtualenv (``.venv-tfal``, made by ``make bench``); without it that
column is reported as missing. The round comparison runs every active-learning seed 0 .. --seeds-1 on both sides (same
split): round times are averaged over all seeds, and accuracy is compared as the mean over seeds
with its spread, because one seed's accuracy differs by several points from the next.
Usage: python benchmarks/bench_round.py [--seeds N] [--no-tfal] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from protocol import (BATCH_SIZE, EPOCHS, INIT_SIZE, QUERY, ROUNDS, SAMPLES, SEED, SEEDS,  # noqa: E402
                      STEP_SIZE, digits_split, gal_cnn, mlp, summarise)


def ours_round(seed: int = SEED) -> dict:
    import keras

    from al_experiments import ActiveLearningLoop, Config, Dataset
    from al_experiments.wrapper import McDropout

    x_train, x_test, y_train, y_test = digits_split()
    keras.utils.set_random_seed(seed)
    config = Config(fit={"epochs": EPOCHS, "batch_size": BATCH_SIZE},
                    query={"sample_size": SAMPLES}, eval={"sample_size": SAMPLES})
    model = McDropout(mlp(), config)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loop = ActiveLearningLoop(model, Dataset(x_train, y_train, test=(x_test, y_test), init_size=INIT_SIZE),
                              QUERY, step_size=STEP_SIZE, max_rounds=ROUNDS, seed=seed)
    seconds, inside = [], []
    for _ in range(ROUNDS):
        sampler = model.backend.sampler(True)
        forward_before = sampler.forward_seconds
        start = time.perf_counter()
        step = loop.step()
        wall = time.perf_counter() - start
        seconds.append(wall)
        inside.append(step["train_time"] + sampler.forward_seconds - forward_before)
    accuracy = step["eval"]["accuracy"]
    result = summarise(seconds, accuracy)
    later = slice(1, None)
    result["overhead_share"] = 1.0 - sum(inside[later]) / sum(seconds[later])
    return result


def tfal_round(python: Path, seed: int = SEED) -> dict | None:
    if not python.exists():
        return None
    proc = subprocess.run([str(python), str(HERE / "tfal_round.py"), str(seed)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def scoring_vs_floor(pool: int = 10_000, samples: int = 20) -> dict:
    import keras
    import tensorflow as tf

    from al_experiments.wrapper import McDropout

    keras.utils.set_random_seed(SEED)
    net = gal_cnn()
    model = McDropout(net)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(SEED).random((pool, 28, 28, 1), dtype=np.float32)
    score = model.get_query_fn("bald")
    score(x[:64], sample_size=samples)  # trace once
    scoring = best_of(lambda: score(x, sample_size=samples))

    # The same scores without sharing the deterministic layers (every sample runs the whole
    # network): what the shared prefix saves, and the cost of stochastic passes as such.
    from al_experiments.acquisition import get_query
    from al_experiments.wrapper.sampling import Sampler

    full = Sampler(net, stochastic=True, share_prefix=False)
    bald = get_query("bald")

    def full_tiling():
        for _, _, probs in full.chunks(x, samples):
            bald.scores(probs)

    full_tiling()
    full_seconds = best_of(full_tiling)

    tiled = np.tile(x, (samples, 1, 1, 1))
    forward = tf.function(lambda batch: net(batch, training=False),
                          input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    chunk = 8192

    def floor_pass():
        for start in range(0, len(tiled), chunk):
            forward(tiled[start:start + chunk]).numpy()

    floor_pass()
    floor = best_of(floor_pass)
    return {"pool": pool, "samples": samples, "bald_seconds": scoring, "floor_seconds": floor,
            "ratio": scoring / floor, "shared_prefix_layers": model.backend.sampler(True).prefix_layers,
            "bald_full_tiling_seconds": full_seconds, "ratio_full_tiling": full_seconds / floor}


MEMORY_CHILD = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, keras
from al_experiments.wrapper import McDropout

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

net = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                        keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
model = McDropout(net)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x = np.random.default_rng(0).random((60000, 784), dtype=np.float32)
score = model.get_query_fn("bald")
score(x[:2000], sample_size=100)          # trace and warm up
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                            # reset the peak-RSS counter
before = rss("VmRSS:")
scores = score(x, sample_size=100)
peak = rss("VmHWM:")
print(json.dumps({"pool": 60000, "samples": 100, "classes": 10,
                  "peak_added_bytes": peak - before, "scores": int(scores.size)}))
"""


def memory() -> dict | None:
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def combine(runs: list[dict]) -> dict:
    """Per-seed results -> the figures of the table (round time and accuracy over all seeds)."""
    accuracies = np.array([run["final_test_accuracy"] for run in runs])
    combined = {
        "per_seed": runs,
        "mean_round_seconds_2_to_6": float(np.mean([run["mean_round_seconds_2_to_6"] for run in runs])),
        "final_test_accuracy": float(accuracies.mean()),
        "final_test_accuracy_std": float(accuracies.std(ddof=1)) if len(runs) > 1 else 0.0,
    }
    if all("overhead_share" in run for run in runs):
        combined["overhead_share"] = float(np.mean([run["overhead_share"] for run in runs]))
    return combined


def difference_interval(ours: dict, tfal: dict) -> tuple[float, float] | None:
    """95% interval of the difference of mean final accuracies, ours - tf_al: Welch's t over the
    independent per-seed values (no pairing across frameworks); None below 2 seeds a side."""
    from scipy import stats

    a, b = ([run["final_test_accuracy"] for run in side["per_seed"]] for side in (ours, tfal))
    if min(len(a), len(b)) < 2:
        return None
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return float(interval.low), float(interval.high)


def interval_cell(interval: tuple[float, float] | None) -> str:
    return "n/a with one seed" if interval is None else f"{interval[0]:+.4f} to {interval[1]:+.4f}"


def accuracy_cell(figures: dict) -> str:
    return f"{figures['final_test_accuracy']:.4f} +- {figures['final_test_accuracy_std']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS, help="active-learning seeds per side")
    parser.add_argument("--no-tfal", action="store_true", help="skip the tf_al comparison")
    parser.add_argument("--tfal-python", default=str(HERE.parent / ".venv-tfal" / "bin" / "python"))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    seeds = list(range(args.seeds))
    figures = {"seeds": seeds, "ours": combine([ours_round(seed) for seed in seeds])}
    tfal_runs = [] if args.no_tfal else [tfal_round(Path(args.tfal_python), seed) for seed in seeds]
    figures["tf_al"] = combine(tfal_runs) if tfal_runs and all(tfal_runs) else None
    figures["scoring"] = scoring_vs_floor()
    figures["memory"] = memory()

    ours, tfal = figures["ours"], figures["tf_al"]
    rows = [("round time, mean of rounds 2-6 over all seeds (s)", f"{ours['mean_round_seconds_2_to_6']:.4f}",
             f"{tfal['mean_round_seconds_2_to_6']:.4f}" if tfal else "n/a"),
            (f"final test accuracy, mean +- std over {len(seeds)} seeds", accuracy_cell(ours),
             accuracy_cell(tfal) if tfal else "n/a")]
    if tfal:
        figures["speedup"] = tfal["mean_round_seconds_2_to_6"] / ours["mean_round_seconds_2_to_6"]
        figures["accuracy_difference"] = ours["final_test_accuracy"] - tfal["final_test_accuracy"]
        figures["accuracy_difference_interval"] = difference_interval(ours, tfal)
        rows.append(("speed-up per round (goal >= 10x, aim 30x)", f"{figures['speedup']:.1f}x", ""))
        rows.append(("accuracy difference, ours - tf_al (goal: within 0.02)",
                     f"{figures['accuracy_difference']:+.4f} (95% interval "
                     f"{interval_cell(figures['accuracy_difference_interval'])})", ""))
    sc = figures["scoring"]
    rows.append(("BALD scoring / compute floor (goal <= 1.3)",
                 f"{sc['ratio']:.2f} ({sc['bald_seconds']:.2f} s / {sc['floor_seconds']:.2f} s)", ""))
    rows.append(("  the same without the shared prefix (every sample runs every layer)",
                 f"{sc['ratio_full_tiling']:.2f} ({sc['bald_full_tiling_seconds']:.2f} s)", ""))
    mem = figures["memory"]
    rows.append(("peak memory added, 60k x T=100 (goal <= 1 GiB)",
                 f"{mem['peak_added_bytes'] / 2**20:.0f} MiB" if mem else "n/a", ""))
    rows.append(("overhead share of a round (goal <= 5%)", f"{100 * ours['overhead_share']:.1f}%", ""))

    print("| figure | al-experiments | tf_al 0.1.1 |\n|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a} | {b} |")
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
