"""``ExperimentSuit``: every (seed, model, query function) combination as one loop (tf_al's API)."""

from __future__ import annotations

import logging
import select
import sys
from typing import Any, Sequence

from al_experiments.acquisition.acquisition_function import AcquisitionFunction
from al_experiments.dataset import Dataset
from al_experiments.loop import ActiveLearningLoop
from al_experiments.utils.seeding import seed_everything
from al_experiments.validation import (
    NON_NEGATIVE,
    SEED,
    WHOLE_AT_LEAST_0,
    WHOLE_AT_LEAST_1,
    AnyOf,
    IsNone,
    ListOf,
    optional,
    reject_unknown_kwargs,
    signature_names,
    validate_params,
)

log = logging.getLogger(__name__)


class ExperimentSuit:
    """Runs an active-learning experiment for each seed x model x query function.

    Experiments are named ``<run>_<seed>_<model>_<query>`` (``<run>_<model>_<query>`` without a
    seed), the file names tf_al's readers expect. Each experiment gets a fresh
    ``AcquisitionFunction`` (tf_al kept the first model's scorer for all models), and
    Python, NumPy and TensorFlow are seeded before each loop is built.

    Args:
        models: A wrapped model or a list of them.
        query_fns: Query function name(s) or ``AcquisitionFunction``(s).
        dataset: The ``Dataset``.
        step_size, max_rounds: As for ``ActiveLearningLoop``.
        runs: Repetitions without seeds (used when ``seed`` is None).
        seed: An int or a list of ints; one pass per seed.
        no_save_state: Kept for compatibility; the model's ``reset`` policy decides.
        acceptance_timeout: Seconds to wait for "proceed? (y/n)" between experiments; None
            proceeds without asking. End of input or the timeout proceeds; "n" stops the suit.
        metrics_handler: An ``ExperimentSuitMetrics`` to write through.
        verbose: Log progress.
    """

    @validate_params({"step_size": WHOLE_AT_LEAST_1, "max_rounds": optional(WHOLE_AT_LEAST_0),
                      "runs": WHOLE_AT_LEAST_1, "seed": AnyOf(SEED, ListOf(SEED), IsNone()),
                      "acceptance_timeout": optional(NON_NEGATIVE)})
    def __init__(
        self,
        models: Any,
        query_fns: Any,
        dataset: Dataset,
        step_size: int = 1,
        max_rounds: int | None = None,
        runs: int = 1,
        seed: int | Sequence[int] | None = None,
        no_save_state: bool = False,
        acceptance_timeout: int | None = None,
        metrics_handler: Any = None,
        metrics_accumulator: Any = None,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        # **kwargs only to name the accepted arguments when a wrong one is passed.
        reject_unknown_kwargs("ExperimentSuit", kwargs, signature_names(ExperimentSuit.__init__))
        if isinstance(models, (list,)):
            self.models = list(models)
        elif isinstance(models, tuple):
            raise ValueError("Pass several models as a list, not a tuple.")
        else:
            self.models = [models]
        if not self.models:
            raise ValueError("ExperimentSuit needs at least one model.")
        names = query_fns if isinstance(query_fns, list) else [query_fns]
        if not names:
            raise ValueError("ExperimentSuit needs at least one query function.")
        # Validate every name now, so a typo fails before hours of experiments.
        self.query_fns = [q if isinstance(q, AcquisitionFunction) else AcquisitionFunction(q) for q in names]
        if not isinstance(dataset, Dataset):
            raise ValueError("ExperimentSuit needs a Dataset as its third argument.")
        if seed is None:
            self.seeds: list[int | None] = [None] * runs
        else:
            self.seeds = list(seed) if isinstance(seed, list) else [seed]
        self.dataset = dataset
        self.step_size = step_size
        self.max_rounds = max_rounds
        self.no_save_state = no_save_state
        self.acceptance_timeout = acceptance_timeout
        self.metrics_handler = metrics_handler
        self.verbose = verbose

    def experiment_names(self) -> list[str]:
        return [name for name, *_ in self._plan()]

    def _plan(self):
        for run, seed in enumerate(self.seeds):
            for model in self.models:
                for query in self.query_fns:
                    model_name = model.get_model_name().lower()
                    prefix = f"{run}_{seed}" if seed is not None else f"{run}"
                    yield f"{prefix}_{model_name}_{query.name}", seed, model, query

    def start(self) -> dict[str, list[dict[str, Any]]]:
        """Run all experiments; returns ``{experiment_name: history}``."""
        results: dict[str, list[dict[str, Any]]] = {}
        plan = list(self._plan())
        for position, (name, seed, model, query) in enumerate(plan):
            if position and not self._proceed():
                log.info("Stopped by the user before %s", name)
                break
            if self.verbose:
                print(f"Running experiment (Run: {name.split('_')[0]} | Model: {model.get_model_name()} | "
                      f"Query-Function: {query.name})")
            if seed is not None:
                seed_everything(seed)
            loop = ActiveLearningLoop(
                model, self.dataset, query.copy(),
                step_size=self.step_size, max_rounds=self.max_rounds, pseudo=True,
                verbose=self.verbose, seed=seed,
            )
            results[name] = loop.run(name, self.metrics_handler)
        return results

    def _proceed(self) -> bool:
        if self.acceptance_timeout is None:
            return True
        stream = sys.stdin
        if stream is None or stream.closed or not stream.isatty():
            return True
        while True:
            print("Proceed with next experiment? (y/n) ", end="", flush=True)
            ready, _, _ = select.select([stream], [], [], self.acceptance_timeout)
            if not ready:
                print("\nTime-out. Auto-proceed with experiments.")
                return True
            answer = stream.readline()
            if answer == "":  # end of input: nobody is there to ask
                return True
            answer = answer.strip().lower()
            if answer in {"y", "yes"}:
                return True
            if answer in {"n", "no"}:
                return False
            print("Unknown value passed. Either input yes or no.")
