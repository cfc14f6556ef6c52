"""al-run's default sweeper (``hydra/sweeper=compose_once``): the cartesian product of the swept
values, as Hydra's basic sweeper makes it, with each job's config composed once instead of twice.

A sweep checks every job's config before any job runs, so that a config that cannot be composed
stops the sweep early; the basic launcher then composes each one again to run it. On a small job
that second composition is a third of what the job costs beyond its rounds. This sweeper keeps
the configs its check composed and hands each to the launcher, which takes it instead of
composing it again. It is written on Hydra's public plug-in interface (``Sweeper``, the
launcher from ``Plugins``, ``OverridesParser``), so it takes the basic sweeper's settings
(``params``, ``max_batch_size``) without subclassing Hydra's internal class. Hydra finds plugins
only in the ``hydra_plugins`` package, hence this module.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# Configs kept at most (about 0.2 MB each); the jobs of a larger sweep past this many are
# composed again by the launcher, as by the basic sweeper.
KEPT_CONFIGS = 256


class ComposedConfigs:
    """A config loader that hands out a config its ``load_sweep_config`` composed before, once.

    It stands in for Hydra's loader (every other attribute is the loader's own). Sent to another
    process (submitit pickles it), it travels without the configs it keeps.
    """

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._kept: dict[tuple[str, ...], DictConfig] = {}

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = tuple(sweep_overrides)
        kept = self._kept.pop(key, None)
        if kept is not None:
            return kept
        return self._loader.load_sweep_config(master_config, sweep_overrides)

    def compose_ahead(self, master_config: DictConfig, sweep_overrides: list[str]) -> None:
        """Compose a job's config now (raising what composing it raises) and keep it."""
        config = self._loader.load_sweep_config(master_config, sweep_overrides)
        if len(self._kept) < KEPT_CONFIGS:
            self._kept[tuple(sweep_overrides)] = config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"_loader": self._loader, "_kept": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def job_overrides(overrides: Sequence[Any]) -> list[list[str]]:
    """Each job's overrides: one per key (a later override of a key replaces an earlier one in
    its place), every combination of the swept values, the first key varying slowest."""
    choices: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise HydraException(f"{override.input_line} cannot be swept: al-run's sweeper takes lists of "
                                 "values, range() and glob(); an interval needs a sampling sweeper plug-in.")
    return [list(job) for job in itertools.product(*choices.values())]


class ComposeOnceSweeper(Sweeper):
    """Every combination of the swept values, launched in batches of ``max_batch_size`` jobs
    (all at once when None), each batch's configs composed and checked before it launches."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        if max_batch_size is not None and max_batch_size < 1:
            raise HydraException(f"hydra.sweeper.max_batch_size={max_batch_size} is invalid: "
                                 "give a whole number >= 1, or null for one batch.")
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        configs = ComposedConfigs(hydra_context.config_loader)
        self.hydra_context = HydraContext(config_loader=configs, callbacks=hydra_context.callbacks)  # type: ignore[arg-type]
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[Any]:
        assert self.config is not None and self.hydra_context is not None and self.launcher is not None
        # The config's params first, so that the command line's value of a key wins.
        params = [f"{key}={value}" for key, value in self.params.items()]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = job_overrides(parser.parse_overrides([*params, *arguments]))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or max(len(jobs), 1)
        returns = []
        for first in range(0, len(jobs), size):
            batch = jobs[first:first + size]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=first)
            for result in results:
                _ = result.return_value  # raises a failed job's exception, as Hydra's sweepers do
            returns.append(results)
        return returns

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.config is not None and self.hydra_context is not None
        for overrides in batch:
            self.hydra_context.config_loader.compose_ahead(self.config, list(overrides))  # type: ignore[attr-defined]
