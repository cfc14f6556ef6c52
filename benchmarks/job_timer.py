"""A Hydra callback for bench_sweep.py: appends a timestamp per sweep and job event to the JSON
lines file named by $AL_BENCH_TIMES (imported by al-run from PYTHONPATH). Times are
``time.perf_counter()``, the system's monotonic clock on Linux, so the events of the job
processes of a local or SLURM sweep line up with the sweep's own."""

import json
import os
import time

from hydra.experimental.callback import Callback


def _record(event: str, **fields) -> None:
    with open(os.environ["AL_BENCH_TIMES"], "a") as out:
        out.write(json.dumps({"event": event, "t": time.perf_counter(), "wall": time.time(), "pid": os.getpid(),
                              **fields}) + "\n")


def process_started() -> float | None:
    """When this process started, on the ``perf_counter`` clock (Linux: from /proc, to the
    kernel's clock tick), or None elsewhere."""
    try:
        with open("/proc/self/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: start time since boot
    except (OSError, IndexError, ValueError):
        return None
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.perf_counter() - age


class JobTimer(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        _record("multirun_start")

    def on_job_start(self, config, **kwargs) -> None:
        _record("job_start", process_start=process_started())

    def on_job_end(self, config, job_return, **kwargs) -> None:
        _record("job_end", seed=int(config.seed), query=str(config.query.name))

    def on_multirun_end(self, config, **kwargs) -> None:
        _record("multirun_end")
