"""``al-run``: the Hydra entry point (also ``python -m al_experiments``).

The config tree ships inside the package (``al_experiments/conf``, found by Hydra as
``pkg://al_experiments.conf``), so a wheel works from any directory. A user's own tree composes
with it through Hydra's ``--config-dir DIR`` or ``hydra.searchpath=[file://DIR]``; strategies of
installed packages (entry-point group ``al_experiments.strategies``) become ``query=<name>``
options before Hydra composes the config.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from al_experiments import conf
from al_experiments.acquisition import StrategyPluginError
from al_experiments.app.callbacks import close_pending_sweeps
from al_experiments.app.errors import AppError
from al_experiments.app.job import run_job
from al_experiments.app.precheck import check_command
from al_experiments.app.schema import register_configs, register_strategy_configs
from al_experiments.utils.signals import install_sigterm_as_interrupt

CONF_PACKAGE = f"pkg://{conf.__name__}"
# The same tree on disk, for tools and tests that read the YAML files themselves.
CONF_DIR = str(Path(conf.__file__).resolve().parent)

register_configs()


def _config_groups_help() -> str:
    """The option lists of the user-facing config groups, for ``al-run --help`` (Hydra's own
    list would show the internal ``schema/*`` groups too)."""
    loader = GlobalHydra.instance().config_loader()
    groups = [g for g in sorted(loader.list_groups("")) if g not in ("hydra", "schema")] + ["hydra/launcher"]
    return "\n".join(f"  {group}: {', '.join(sorted(loader.get_group_options(group)))}" for group in groups)


OmegaConf.register_new_resolver("al_config_groups", _config_groups_help, replace=True)


@hydra.main(version_base="1.3", config_path=CONF_PACKAGE, config_name="config")
def app(cfg: DictConfig) -> float | None:
    """One job; returns the final test accuracy (what a Hydra sweeper would optimise)."""
    try:
        return run_job(cfg).get("final_accuracy")
    except AppError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra records the failed job, runs the others, then prints this message
        # A single run: the sentence alone, without Hydra's "Error executing job" preamble.
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Run the app on ``argv`` (default: the command line); end a sweep's parent run truthfully
    however the process leaves. Exits like the command: ``SystemExit`` with its status.

    Callable more than once in one process (the tests do), with the same behaviour as
    ``al-run``: Hydra reads its arguments from ``sys.argv``, which is set for the call.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else "al-run", *argv]
    try:
        _main(argv)
    finally:
        sys.argv = saved_argv
        GlobalHydra.instance().clear()


def _main(argv: list[str]) -> None:
    # MLflow configures its own logger when first imported (after Hydra's logging config):
    # its store-migration chatter is not the researcher's business unless asked for.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    install_sigterm_as_interrupt()
    try:
        register_strategy_configs()  # before Hydra composes: query=<an installed strategy>
        check_command(argv)  # a refused command leaves no folder, store or run behind
    except (StrategyPluginError, AppError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
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
