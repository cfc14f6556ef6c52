"""``ActiveLearningLoop``: fit -> query -> annotate -> evaluate, one round per iteration.

The loop knows nothing of Hydra, MLflow or files: it yields one result per round and sinks (an
``ExperimentSuitMetrics``, an MLflow logger, a progress bar) consume them.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from al_experiments.acquisition.acquisition_function import AcquisitionFunction
from al_experiments.dataset import Dataset
from al_experiments.oracle import Oracle
from al_experiments.pool import Pool
from al_experiments.utils.seeding import round_rng, seed_or_global
from al_experiments.wrapper.interface import as_active_model
from al_experiments.validation import (
    SEED,
    WHOLE_AT_LEAST_0,
    WHOLE_AT_LEAST_1,
    check_labels,
    optional,
    reject_unknown_kwargs,
    signature_names,
    validate_params,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]
# The keywords ActiveLearningLoop reads from **kwargs (tf_al's signature ends in **kwargs).
LOOP_KEYWORDS = ("oracle", "seed")


class ActiveLearningLoop:
    """Creates an active-learning loop over ``dataset`` with ``model`` and ``query_fn``.

    Iterating gives tf_al's step dict per round (``train, train_time, query_time, optim,
    optim_time, eval, eval_time, indices_selected``); ``len(loop)`` is the number of rounds, so
    ``for step in tqdm(loop)`` is a real progress bar. ``run()`` returns the full history.

    Args:
        model: A wrapped model (``wrapper.Model``, ``wrapper.McDropout``, ``wrapper.DeepEnsemble``,
            or any object with ``reset``, ``fit``, ``evaluate`` and tf_al's ``get_query_fn`` or
            ``predictive_samples``; batch strategies also use ``consistent_samples`` and
            ``embeddings``).
        dataset: The ``Dataset``.
        query_fn: A query function name or an ``AcquisitionFunction``.
        step_size: Points labelled per round.
        max_rounds: Rounds to run; None runs until the pool is empty.
        pseudo: Take labels from the dataset's targets (True) or ask the oracle's callback.
        verbose: Log each round.
        oracle: An ``Oracle`` or a ``callback(pool, indices)`` that labels points (pseudo=False).
        seed: Seed of the loop's per-round randomness; by default drawn from NumPy's global
            RNG, so ``np.random.seed`` makes a loop reproducible as in tf_al.
    """

    @validate_params({"step_size": WHOLE_AT_LEAST_1, "max_rounds": optional(WHOLE_AT_LEAST_0),
                      "seed": optional(SEED)})
    def __init__(
        self,
        model: Any,
        dataset: Dataset,
        query_fn: str | AcquisitionFunction,
        step_size: int = 1,
        max_rounds: int | None = None,
        pseudo: bool = True,
        verbose: bool = False,
        **kwargs: Any,
    ) -> None:
        reject_unknown_kwargs("ActiveLearningLoop", kwargs,
                              signature_names(ActiveLearningLoop.__init__) | set(LOOP_KEYWORDS))
        oracle = kwargs.pop("oracle", None)
        seed = kwargs.pop("seed", None)
        if isinstance(query_fn, (list, tuple)):
            raise ValueError("ActiveLearningLoop runs one query function; use ExperimentSuit for several.")
        self.query_fn = query_fn if isinstance(query_fn, AcquisitionFunction) else AcquisitionFunction(query_fn)
        self.model = as_active_model(model)
        self.dataset = dataset
        self.step_size = int(step_size)
        self.max_rounds = None if max_rounds is None else int(max_rounds)
        self.pseudo = bool(pseudo)
        self.verbose = verbose
        self.seed = seed_or_global(seed)
        self.model.set_seed(self.seed)
        self._check_labels()

        if isinstance(oracle, Oracle):
            self.oracle = oracle
        else:
            self.oracle = Oracle(callback=oracle, pseudo_mode=self.pseudo)
        targets = dataset.get_train_targets() if self.pseudo else None
        self.pool = Pool(dataset.get_train_inputs(), targets)
        init = dataset.get_init_indices()
        init_rng = round_rng(self.seed, 0, "init")
        strategy = getattr(dataset, "init_strategy", "balanced")
        if init is None and dataset.get_init_size() > 0 and strategy != "balanced":
            # A label-free draw (random, typiclust, probcover): indices any oracle can label.
            init = self.pool.choose_initial(dataset.get_init_size(), init_rng, strategy=strategy)
        if init is not None and len(init):
            self.oracle.init(self.pool, init, rng=init_rng)
        elif dataset.get_init_size() > 0:
            self.oracle.init(self.pool, dataset.get_init_size(), rng=init_rng)
        self.initial_indices = self.pool.get_labeled_indices()
        self.query_config = self.model.get_config_for("query")
        self.query_config.pop("step_size", None)
        self._total_rounds = self._count_rounds()
        self.i = 0
        self.history: list[Row] = []

    def _check_labels(self) -> None:
        n = self.model.num_outputs()
        train_x = self.dataset.get_train_inputs()
        if n is None and len(train_x):
            # A wrapped non-Keras object learns its width from its first prediction: probe one
            # training input (None again if it cannot predict before it is fitted).
            n = self.model.probe_num_outputs(train_x[:1])
        if n is None:
            return
        classes = 2 if n == 1 else n
        for name, (_, y) in (("Train", self.dataset.get_train_split()), ("Test", self.dataset.get_test_split()),
                             ("Validation", self.dataset.get_eval_split())):
            if y is not None:
                check_labels(name, y, classes)

    def _count_rounds(self) -> int:
        rounds = math.ceil(self.pool.get_length_unlabeled() / self.step_size)
        return rounds if self.max_rounds is None else min(rounds, self.max_rounds)

    # ---------------------------------------------------------------- iteration
    def __len__(self) -> int:
        return self._total_rounds

    def __iter__(self) -> "ActiveLearningLoop":
        # Like tf_al, iterating again continues from the current labelling (the pool is kept).
        return self

    def has_next(self) -> bool:
        return self.i < self._total_rounds and self.pool.has_unlabeled()

    def is_done(self) -> bool:
        return not self.has_next()

    def __next__(self) -> Row:
        """One round: returns tf_al's eight-key step dict, and records it in ``history`` with
        ``iteration``, ``labeled_pool_size`` and ``unlabeled_pool_size`` added (and
        ``copies_selected`` where the dataset knows the pool's copies, ``target_picks`` where
        the strategy drew a target set from the pool), so a loop iterated by hand checkpoints
        and resumes like one that was ``run()``."""
        if not self.has_next():
            raise StopIteration
        labelled_before = self.pool.get_length_labeled()
        step = self._round()
        row = {**step, "iteration": self.i, "labeled_pool_size": labelled_before,
               "unlabeled_pool_size": self.pool.get_length_unlabeled()}
        copies = getattr(self.dataset, "copies_in", None)
        copies = copies(step["indices_selected"]) if copies is not None else None
        if copies is not None:
            row["copies_selected"] = copies
        targets = getattr(self.query_fn, "last_target_indices", None)
        if targets is not None:
            row["target_picks"] = self._target_picks(step["indices_selected"], targets)
        self.history.append(row)
        return step

    def _target_picks(self, picked: list[int], targets: np.ndarray) -> int:
        """How many picks were points of the round's target set, or copies of one."""
        groups = getattr(self.dataset, "copy_of", None)
        if groups is None:
            return int(np.isin(picked, targets).sum())
        return int(np.isin(groups[np.asarray(picked, dtype=np.int64)], groups[targets]).sum())

    def step(self) -> Row:
        """Perform one round."""
        return next(self)

    def _round(self) -> Row:
        round_index = self.i + 1
        model, pool, dataset = self.model, self.pool, self.dataset
        model.reset(pool, dataset, round_index=round_index)

        train = train_time = None
        if pool.has_labeled():
            labelled = pool.get_labeled_indices()
            (history, train_time) = _timed(
                model.fit, pool.get_inputs_by(labelled), pool.get_targets_by(labelled), verbose=False
            )
            train = dict(getattr(history, "history", history) or {})
            if "loss" in train:
                # tf_al's column order puts train_loss first; Keras 3's fit orders its logs
                # differently (e.g. accuracy before loss).
                train = {"loss": train.pop("loss"), **train}

        optim = optim_time = None
        if dataset.has_eval_set():
            optim, optim_time = _timed(model.optimize, *dataset.get_eval_split())
            if optim is None:  # the model has no validation step
                optim_time = None

        rng = round_rng(self.seed, round_index, "query")
        (indices, _scores), query_time = _timed(
            self.query_fn, model, pool, step_size=self.step_size, rng=rng, dataset=dataset,
            **self.query_config
        )
        self.oracle.annotate(pool, indices)

        evaluation = eval_time = None
        if dataset.has_test_set():
            evaluation, eval_time = _timed(
                model.evaluate, *dataset.get_test_split(), **model.get_config_for("eval")
            )
        self.i += 1
        step = {
            "train": train,
            "train_time": train_time,
            "query_time": query_time,
            "optim": optim,
            "optim_time": optim_time,
            "eval": evaluation,
            "eval_time": eval_time,
            "indices_selected": [int(i) for i in indices],
        }
        if self.verbose:
            log.info("round %d: %s", round_index, {k: v for k, v in step.items() if k != "indices_selected"})
        return step

    def rounds(self) -> Iterator[Row]:
        """Run the remaining rounds, yielding each round as recorded in ``history``: the step
        dict with tf_al's three run() columns, ``iteration`` (1-based), ``labeled_pool_size``
        (the training-set size of that round) and ``unlabeled_pool_size`` (after annotation)."""
        while self.has_next():
            next(self)
            yield self.history[-1]

    def run(self, experiment_name: str | None = None, metrics_handler: Any = None,
            progress: bool | None = None) -> list[Row]:
        """Run until done; write each round through ``metrics_handler``; return the history."""
        name = experiment_name or self.get_experiment_name()
        if metrics_handler is not None and hasattr(metrics_handler, "add_experiment_meta"):
            metrics_handler.add_experiment_meta(
                name, self.get_model_name(), self.get_query_fn_name(), self.collect_meta_params()
            )
        # disable=None turns the bar off where stdout is not a terminal (CI, SLURM logs).
        bar = tqdm(total=len(self) - self.i, disable=None if progress is None else not progress,
                   desc=name, leave=False)
        try:
            for step in self.rounds():
                if metrics_handler is not None:
                    metrics_handler.write_line(name, step)
                bar.update(1)
        finally:
            bar.close()
        return self.history

    # ---------------------------------------------------------------- resume
    def state(self) -> dict[str, Any]:
        """What it takes to continue this loop after its last completed round, as plain data.

        Every round's randomness derives from (seed, round) and the model redraws its weights
        from them too, so the labelling, the round count and the history are enough; a model
        that carries weights from round to round (``reset="warm"``) adds them through its
        ``resume_state``. Sinks (files, MLflow) decide where this goes.
        """
        order = self.pool.get_labelling_order()
        state: dict[str, Any] = {
            "round": self.i,
            "seed": self.seed,
            "labelling_order": [int(i) for i in order],
            "history": self.history,
        }
        if not self.pool.is_pseudo():
            state["targets"] = self.pool.get_targets_by(order).tolist() if len(order) else []
        state["model"] = self.model.resume_state()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from ``state()`` of a loop built from the same config)."""
        if int(state["seed"]) != self.seed:
            raise ValueError(
                f"This checkpoint belongs to a loop with seed {state['seed']}, not {self.seed}; "
                "resume with the same configuration or start afresh."
            )
        order = np.asarray(state["labelling_order"], dtype=np.int64)
        initial = self.pool.get_labelling_order()
        if not np.array_equal(order[:len(initial)], initial):
            raise ValueError(
                "This checkpoint starts from another initial labelled set than this loop draws; "
                "the data or the configuration changed since it was written: start afresh."
            )
        added = order[len(initial):]
        if len(added):
            if self.pool.is_pseudo():
                self.pool.annotate(added)
            else:
                targets = np.asarray(state["targets"])[len(initial):]
                self.pool.annotate(added, targets)
        self.i = int(state["round"])
        self.history = list(state["history"])
        if state.get("model") is not None:
            self.model.restore_resume_state(state["model"])

    # ---------------------------------------------------------------- names and meta
    def collect_meta_params(self) -> dict[str, Any]:
        """Meta information for ``.meta.json``: rounds, step size, actual initial set, and
        what the strategy's choice rests on (``AcquisitionFunction.samples_used``)."""
        return {
            "iterations": len(self),
            "step_size": self.step_size,
            "samples": self.query_fn.samples_used(self.model),
            "initial_size": int(len(self.initial_indices)),
            "initial_indices": [int(i) for i in self.initial_indices],
        }

    def get_model_name(self) -> str:
        return self.model.get_model_name().lower()

    def get_query_fn_name(self) -> str:
        return self.query_fn.get_name()

    def get_experiment_name(self) -> str:
        return f"{self.get_model_name()}_{self.get_query_fn_name()}"


def _timed(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
