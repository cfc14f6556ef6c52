"""A Hydra callback for bench_sweep.py: appends a timestamp per sweep and job event to the JSON
lines file named by $AL_BENCH_TIMES (imported by al-run from PYTHONPATH)."""

import json
import os
import time

from hydra.experimental.callback import Callback


def _record(event: str, **fields) -> None:
    with open(os.environ["AL_BENCH_TIMES"], "a") as out:
        out.write(json.dumps({"event": event, "t": time.perf_counter(), "wall": time.time(), **fields}) + "\n")


class JobTimer(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        _record("multirun_start")

    def on_job_start(self, config, **kwargs) -> None:
        _record("job_start")

    def on_job_end(self, config, job_return, **kwargs) -> None:
        _record("job_end", seed=int(config.seed), query=str(config.query.name))

    def on_multirun_end(self, config, **kwargs) -> None:
        _record("multirun_end")
