"""``al-run``: the Hydra entry point (also ``python -m al_experiments``).

The config tree lives in the repository's ``conf/`` (found from this file, since Hydra resolves
a relative ``config_path`` inside an installed package, not the repo); ``AL_EXPERIMENTS_CONF``
points at another tree, and ``--config-dir`` adds one.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from al_experiments.app.callbacks import close_pending_sweeps
from al_experiments.app.errors import AppError
from al_experiments.app.schema import register_configs

CONF_DIR = os.environ.get("AL_EXPERIMENTS_CONF") or str(Path(__file__).resolve().parents[3] / "conf")

register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def app(cfg: DictConfig) -> float | None:
    """One job; returns the final test accuracy (what a Hydra sweeper would optimise)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from al_experiments.app.job import run_job

    try:
        return run_job(cfg).get("final_accuracy")
    except AppError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra records the failed job, runs the others, then prints this message
        # A single run: the sentence alone, without Hydra's "Error executing job" preamble.
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def main() -> None:
    """Run the app; end a sweep's parent run truthfully however the process leaves."""
    # SIGTERM (scancel, kill, CI timeouts) unwinds like Ctrl-C, so runs end KILLED, not RUNNING.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except KeyboardInterrupt:
        close_pending_sweeps("KILLED")
        raise
    finally:
        # Reached with sweeps still open only when a job failed (Hydra then exits via
        # SystemExit and skips on_multirun_end); a clean sweep was closed FINISHED already.
        close_pending_sweeps("FAILED")


if __name__ == "__main__":
    main()
