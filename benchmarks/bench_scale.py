"""Seconds per round and peak memory of every strategy on large pools, printed as a table.

Protocol: an MC-dropout MLP 784-256-10 (dropout 0.5, trained briefly on 1,000 labelled points),
T = 20 samples for every strategy, a batch of 10, and a pool of N random 784-pixel float32 inputs
(N = 10,000, 100,000 and 1,000,000 by default: 3 GiB of inputs at the largest). Each N runs in a
fresh process that holds the pool once and runs every registered strategy on it in turn; a
strategy's first call, on a 2,000-point pool, traces and compiles what it needs and is not
timed. A row gives the wall seconds of one acquisition round (``AcquisitionFunction.__call__``:
the model's passes over the pool and the selection) and the peak resident memory the round adds
over the process before it (``VmHWM`` reset through ``/proc/self/clear_refs`` before each
strategy), next to the pool's own size. A strategy still running after --limit seconds is
stopped and reported as such.

Targets (issue text): at N = 1,000,000 every strategy within 60 s a round on 2 cores, and peak
memory at most the pool plus 2 GiB.

Usage: python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--only a,b]
       [--limit S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SAMPLES = 20
BATCH = 10
LABELLED = 1_000

CHILD = r"""
import json, os, signal, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, keras
from al_experiments import AcquisitionFunction, Pool
from al_experiments.acquisition import available_queries
from al_experiments.wrapper import McDropout

n, samples, batch, labelled, limit = map(int, sys.argv[1:6])
only = [name for name in sys.argv[6].split(",") if name]

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

class Stopped(Exception):
    pass

def stop(signum, frame):
    raise Stopped()

signal.signal(signal.SIGALRM, stop)
keras.utils.set_random_seed(0)
net = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                        keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
model = McDropout(net)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.random((n, 784), dtype=np.float32)
y = rng.integers(0, 10, n)
model.fit(x[:labelled], y[:labelled], epochs=2, verbose=0)
small = Pool(x[:2000], y[:2000]); small.annotate(np.arange(200))
pool = Pool(x, y); pool.annotate(np.arange(labelled))
names = only or [name for name in available_queries(load_plugins=False)]
options = {"epig": {"target_size": 100}}
for name in names:
    query = AcquisitionFunction(name, options=options.get(name))
    row = {"strategy": name, "n": n, "pool_bytes": int(x.nbytes)}
    try:
        query(model, small, step_size=batch, rng=np.random.default_rng(0), sample_size=samples)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter
        before = rss("VmRSS:")
        signal.alarm(limit)
        start = time.perf_counter()
        indices, _ = query(model, pool, step_size=batch, rng=np.random.default_rng(1), sample_size=samples)
        row["seconds"] = time.perf_counter() - start
        signal.alarm(0)
        row["peak_added_bytes"] = rss("VmHWM:") - before
        row["picked"] = len(indices)
    except Stopped:
        row["stopped_after_s"] = limit
    except Exception as exc:  # a strategy that cannot run here is reported, not fatal
        signal.alarm(0)
        row["error"] = f"{type(exc).__name__}: {exc}"[:200]
    print(json.dumps(row), flush=True)
"""


def run_size(n: int, only: list[str], limit: int) -> list[dict]:
    """Every strategy's row at pool size ``n``, from one child process."""
    cmd = [sys.executable, "-c", CHILD, str(n), str(SAMPLES), str(BATCH), str(LABELLED), str(limit), ",".join(only)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    rows = []
    for line in proc.stdout:
        if line.startswith("{"):
            rows.append(json.loads(line))
            print_row(rows[-1])
    proc.wait()
    if proc.returncode != 0:
        print(f"  (the N = {n:,} process ended with exit status {proc.returncode})")
    return rows


def print_row(row: dict) -> None:
    gib = 2**30
    if "seconds" in row:
        within = row["peak_added_bytes"] <= 2 * gib
        cells = (f"{row['seconds']:.2f}", f"{row['peak_added_bytes'] / gib:.2f}",
                 "yes" if row["seconds"] <= 60 and within else "NO")
    elif "stopped_after_s" in row:
        cells = (f"> {row['stopped_after_s']} (stopped)", "n/a", "NO")
    else:
        cells = (row["error"], "n/a", "NO")
    print(f"| {row['strategy']} | {row['n']:,} | {row['pool_bytes'] / gib:.2f} | {cells[0]} | {cells[1]} | "
          f"{cells[2]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="pool sizes, comma-separated")
    parser.add_argument("--only", default="", help="strategies, comma-separated (default: every registered one)")
    parser.add_argument("--limit", type=int, default=300, help="seconds after which a round is stopped")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    print(f"MLP 784-256-10, T = {SAMPLES}, batch {BATCH}, {LABELLED:,} labelled; target at 1,000,000: "
          "<= 60 s a round and peak added <= 2 GiB over the pool")
    print("| strategy | N | pool GiB | seconds a round | peak added GiB | within the targets |")
    print("|---|---:|---:|---:|---:|---|")
    rows = []
    for n in (int(size) for size in args.sizes.split(",")):
        rows += run_size(n, only, args.limit)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
