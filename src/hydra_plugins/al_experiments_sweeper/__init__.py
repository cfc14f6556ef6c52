"""Hydra's basic sweeper, composing each job's config once instead of twice (``al-run``'s
default sweeper, ``hydra/sweeper=compose_once``).

The basic sweeper composes every job's config before the sweep starts, so that a config that
cannot be composed stops the sweep before any job runs; the basic launcher then composes each
one again to run it. On a small job that second composition is a third of what the job costs
beyond its rounds. This sweeper keeps the configs its check composed and hands each to the
launcher, which takes it instead of composing it again; the check and its early failure stay
as they were. Hydra finds plugins only in the ``hydra_plugins`` package, hence this module.
"""

from __future__ import annotations

from typing import Any, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

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


class ComposeOnceSweeper(BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        configs = ComposedConfigs(hydra_context.config_loader)
        context = HydraContext(config_loader=configs, callbacks=hydra_context.callbacks)  # type: ignore[arg-type]
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.config is not None and self.hydra_context is not None
        for overrides in batch:
            self.hydra_context.config_loader.compose_ahead(self.config, list(overrides))  # type: ignore[attr-defined]
