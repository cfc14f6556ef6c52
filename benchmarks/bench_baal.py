"""Rounds against baal 2.1.0 and against the arithmetic floor, on two protocols.

* digits: scikit-learn digits 70/30, MLP 64-128-10 with dropout 0.5, 20 initial labels
  (class-balanced, the same on both sides), 6 rounds of 10 by BALD, 50 epochs of batch 32 from
  fresh weights, T = 20, test accuracy each round (T = 20); seeds 0 .. --seeds-1.
* cnn: Gal et al. (2017)'s CNN on Fashion-MNIST (Debian's copy): a pool of 10,000 images, 2,000
  test images, 20 initial labels + 5 rounds of 10 by BALD, the same training and T.

Ours builds the network with each Keras API of --apis in turn (Sequential, functional,
subclassed: the same layers), so each API's round is reported next to baal's.

Both sides run in this one command, one after the other, on the same data: ours in this
process, baal (PyTorch on CPU) in its own virtualenv ``.venv-baal`` (``make bench`` makes it),
written as baal's example scripts write a run (see baal_round.py for every setting). A round
is train + score the pool + label + test; its time is the mean of rounds 2 to the last (round 1
holds each side's warm-up). The floor (floor.py) is what the round's matrix products alone take
here as compiled TensorFlow, and ours / floor is the distance to it.
Usage: python benchmarks/bench_baal.py [--seeds N] [--cnn-seeds N] [--apis A,B] [--no-baal] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import protocol as P  # noqa: E402

BAAL_PYTHON = HERE.parent / ".venv-baal" / "bin" / "python"
PROTOCOLS = {
    "digits": {"rounds": P.ROUNDS, "goal": 8.0},
    "cnn": {"rounds": P.CNN_ROUNDS, "goal": 10.0},
}


def _data(name: str):
    if name == "digits":
        return P.digits_split()
    x_pool, x_test, y_pool, y_test = P.fashion_split()
    return x_pool[..., None], x_test[..., None], y_pool, y_test


def ours(name: str, seed: int, api: str) -> dict:
    import keras

    from al_experiments import ActiveLearningLoop, Config, Dataset
    from al_experiments.wrapper import McDropout

    x_pool, x_test, y_pool, y_test = _data(name)
    keras.utils.set_random_seed(seed)
    config = Config(fit={"epochs": P.EPOCHS, "batch_size": P.BATCH_SIZE},
                    query={"sample_size": P.SAMPLES}, eval={"sample_size": P.SAMPLES})
    model = McDropout(P.mlp(api) if name == "digits" else P.gal_cnn(api), config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    dataset = Dataset(x_pool, y_pool, test=(x_test, y_test), init_indices=P.initial_indices(y_pool, P.INIT_SIZE, seed))
    rounds = PROTOCOLS[name]["rounds"]
    loop = ActiveLearningLoop(model, dataset, P.QUERY, step_size=P.STEP_SIZE, max_rounds=rounds, seed=seed)
    seconds, phases, accuracy = [], {"train": [], "query": [], "eval": []}, []
    for _ in range(rounds):
        start = time.perf_counter()
        step = loop.step()
        seconds.append(time.perf_counter() - start)
        for phase in phases:
            phases[phase].append(step[f"{phase}_time"])
        accuracy.append(step["eval"]["accuracy"])
    return {"seed": seed, "round_seconds": seconds, "phase_seconds": phases, "test_accuracy": accuracy,
            "final_test_accuracy": accuracy[-1], "mean_round_seconds_2_to_end": statistics.mean(seconds[1:])}


def baal(name: str, seed: int, threads: int | None) -> dict | None:
    if not BAAL_PYTHON.exists():
        return None
    command = [str(BAAL_PYTHON), str(HERE / "baal_round.py"), "--protocol", name, "--seed", str(seed)]
    proc = subprocess.run(command + (["--threads", str(threads)] if threads else []), capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def floor_of(name: str) -> dict:
    from floor import CNN_LAYERS, MLP_LAYERS, round_floor

    x_pool, x_test, _, _ = _data(name)
    rounds = PROTOCOLS[name]["rounds"]
    labelled = [P.INIT_SIZE + P.STEP_SIZE * r for r in range(1, rounds)]  # rounds 2 .. last
    return round_floor(MLP_LAYERS if name == "digits" else CNN_LAYERS, labelled,
                       [len(x_pool) - n for n in labelled], len(x_test), P.EPOCHS, P.BATCH_SIZE, P.SAMPLES)


def side(runs: list[dict]) -> dict:
    accuracy = [run["final_test_accuracy"] for run in runs]
    phases = {phase: statistics.mean(np.mean(run["phase_seconds"][phase][1:]) for run in runs)
              for phase in ("train", "query", "eval")}
    return {"runs": runs, "round_seconds": statistics.mean(run["mean_round_seconds_2_to_end"] for run in runs),
            "phase_seconds": phases, "final_test_accuracy": statistics.mean(accuracy),
            "final_test_accuracy_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the digits protocol, per side")
    parser.add_argument("--cnn-seeds", type=int, default=1, help="seeds of the cnn protocol, per side")
    parser.add_argument("--apis", default=",".join(P.APIS),
                        help=f"comma-separated Keras APIs that build our network (default: {','.join(P.APIS)})")
    parser.add_argument("--no-baal", action="store_true")
    parser.add_argument("--only", choices=list(PROTOCOLS))
    parser.add_argument("--threads", type=int,
                        help="threads of both sides (TensorFlow's intra- and inter-op pools, torch.set_num_threads); "
                             "default: each library's own (all cores)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    apis = [api.strip() for api in args.apis.split(",") if api.strip()]
    if not apis or any(api not in P.APIS for api in apis):
        parser.error(f"--apis takes a comma-separated list of {', '.join(P.APIS)}; got {args.apis!r}.")
    if args.threads:  # read when TensorFlow starts, which is later (inside ours)
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(args.threads)

    figures = {}
    for name in [args.only] if args.only else PROTOCOLS:
        seeds = range(args.seeds if name == "digits" else args.cnn_seeds)
        entry = {"seeds": list(seeds), "ours": {api: side([ours(name, seed, api) for seed in seeds]) for api in apis}}
        baal_runs = [] if args.no_baal else [baal(name, seed, args.threads) for seed in seeds]
        entry["baal"] = side(baal_runs) if baal_runs and all(baal_runs) else None
        entry["floor"] = floor_of(name)
        figures[name] = entry

    threads = f"{args.threads} thread(s) a side" if args.threads else f"each library's default threads ({os.cpu_count()} cores)"
    figures["threads"] = args.threads
    print(f"| protocol ({threads}) | figure | al-experiments | baal 2.1.0 | goal |\n|---|---|---|---|---|")
    for name, entry in figures.items():
        if name == "threads":
            continue
        them, fl = entry["baal"], entry["floor"]
        goal = PROTOCOLS[name]["goal"]
        rows, speedups, over_floor = [], {}, {}
        for api, us in entry["ours"].items():
            rows.append((f"seconds per round (mean of rounds 2 to last), {api}", f"{us['round_seconds']:.4f}",
                         f"{them['round_seconds']:.4f}" if them else "n/a", ""))
            for phase in ("train", "query", "eval"):
                rows.append((f"  {phase}", f"{us['phase_seconds'][phase]:.4f}",
                             f"{them['phase_seconds'][phase]:.4f}" if them else "n/a", ""))
            if them:
                speedups[api] = them["round_seconds"] / us["round_seconds"]
                rows.append((f"speed-up per round, {api}", f"{speedups[api]:.1f}x", "", f">= {goal:.0f}x"))
            over_floor[api] = us["round_seconds"] / fl["round_floor_s"]
            rows.append((f"round / floor, {api}", f"{over_floor[api]:.1f}",
                         f"{them['round_seconds'] / fl['round_floor_s']:.1f}" if them else "n/a", ""))
            rows.append((f"final test accuracy, mean +- std over {len(entry['seeds'])} seed(s), {api}",
                         f"{us['final_test_accuracy']:.3f} +- {us['final_test_accuracy_std']:.3f}",
                         f"{them['final_test_accuracy']:.3f} +- {them['final_test_accuracy_std']:.3f}" if them else "n/a",
                         "equal or better"))
        if speedups:
            entry["speedup"] = speedups
        entry["ours_over_floor"] = over_floor
        rows.append(("arithmetic per round, GFLOP (train / score / test)",
                     f"{fl['round_flops'] / 1e9:.3f} ({fl['train_flops'] / 1e9:.3f} / {fl['score_flops'] / 1e9:.3f} / "
                     f"{fl['eval_flops'] / 1e9:.3f})", "", ""))
        rows.append(("floor: those products as compiled matmuls, s (train / score / test)",
                     f"{fl['round_floor_s']:.4f} ({fl['train_floor_s']:.4f} / {fl['score_floor_s']:.4f} / "
                     f"{fl['eval_floor_s']:.4f})", "", ""))
        for row in rows:
            print(f"| {name} | " + " | ".join(row) + " |")
    text = json.dumps(figures, indent=2)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
