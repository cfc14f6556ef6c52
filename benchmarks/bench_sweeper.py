"""What al-run's compose-once sweeper saves per job against Hydra's basic sweeper.

Both sweep the same jobs over al-run's packaged config tree with a task that does nothing, so
what is timed is Hydra's share of a job: composing its config (twice with the basic sweeper,
once with ``compose_once``), its run folder, ``.hydra`` files and logging. The two sweepers
alternate, each sweep in a fresh process, and the median over the repeats is reported per job.
Usage: python benchmarks/bench_sweeper.py [--jobs N] [--repeats K]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = """
import hydra

from al_experiments.app.schema import register_configs

register_configs()  # the typed schemas al-run's config tree extends, as al-run stores them


@hydra.main(version_base="1.3", config_path="pkg://al_experiments.conf", config_name="config")
def main(cfg):
    return None

if __name__ == "__main__":
    main()
"""
SWEEPERS = ("basic", "compose_once")


def one_sweep(app: Path, folder: str, sweeper: str, jobs: int) -> float:
    """Seconds per job of a sweep of ``jobs`` jobs, beyond the same process running one job."""
    def run(*overrides: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(app), *overrides, "~hydra/callbacks",
                        f"hydra/sweeper={sweeper}", f"hydra.sweep.dir={folder}/{sweeper}-{time.time_ns()}",
                        f"hydra.run.dir={folder}/run-{time.time_ns()}"],
                       check=True, capture_output=True, cwd=folder)
        return time.perf_counter() - start

    return (run("-m", f"seed=range(0,{jobs})") - run("-m", "seed=0")) / (jobs - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SWEEPERS}
    with tempfile.TemporaryDirectory() as folder:
        app = Path(folder, "app.py")
        app.write_text(APP)
        for _ in range(args.repeats):
            for name in SWEEPERS:
                times[name].append(one_sweep(app, folder, name, args.jobs))
    for name in SWEEPERS:
        print(f"{name:>13}: {statistics.median(times[name]) * 1000:7.1f} ms a job "
              f"(median of {args.repeats} sweeps of {args.jobs} jobs)")
    saved = statistics.median(a - b for a, b in zip(times["basic"], times["compose_once"]))
    print(f"compose_once saves {saved * 1000:.1f} ms a job (median of the paired differences)")


if __name__ == "__main__":
    main()
