"""``Model``: the base wrapper between a Keras network and the active-learning loop (tf_al API).

The wrapper owns what a round needs from a network: reset, fit, predictive samples, evaluate.
Its hot paths are compiled (see ``compiled.py``); anything the fast trainer does not cover
(callbacks, validation data, sample weights, non-accuracy metrics) goes through Keras' ``fit``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import uuid
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from al_experiments.config import Config
from al_experiments.utils.seeding import derive_seed
from al_experiments.utils.tf_import import import_tensorflow
from al_experiments.validation import reject_unknown_kwargs, signature_names
from al_experiments.wrapper.keras_metrics import (
    class_probabilities,
    loss_value,
    metric_name,
    metric_value,
    prepare_targets,
)

log = logging.getLogger(__name__)

RESET_POLICIES = ("reinit", "initial", "warm")
# The keywords Model reads from **kwargs (tf_al's ``classification``/``is_binary`` and ours).
MODEL_KEYWORDS = ("classification", "is_binary", "reset", "fast_fit", "embedding_layer")
# fit() keywords the compiled trainer handles itself; any other keyword means Keras' fit.
_FAST_FIT_KEYS = {"epochs", "batch_size", "verbose", "shuffle", "x", "y"}


class Model:
    """Wrap a compiled-or-not Keras model for active learning.

    Args:
        model: A Keras model (Sequential, functional or subclassed) that outputs probabilities,
            or any other object with ``predict_proba``/``predict``/``__call__`` giving class
            probabilities ``(N, C)`` (and ``fit(x, y, **kw)`` to train), e.g. a scikit-learn
            classifier: ``Model(obj)`` then returns a generated subclass of the requested class
            (``isinstance`` holds); its semantics are documented in ``wrapper/generic.py``.
        config: ``Config`` with ``fit``, ``query`` and ``eval`` sections.
        name: Optional name, appended to the model type in experiment names.
        model_type: Short type string, e.g. ``"mc_dropout"``.
        checkpoint_path: Folder for ``save_weights``/``load_weights`` (default: cwd).
        verbose: Log at debug level.
        reset: What ``reset`` does between rounds: ``"reinit"`` (fresh random weights every round,
            tf_al's and Gal et al.'s protocol; default), ``"initial"`` (the same initial weights
            every round) or ``"warm"`` (keep training the current weights).
        fast_fit: Use the compiled trainer where it applies (default True).
        embedding_layer: Name of the layer whose output ``embeddings`` returns (default None:
            the input of the last Dense layer).
        classification, is_binary: Problem kind (kept for tf_al compatibility).
    """

    # May ``Model(obj)`` wrap an object that is not a Keras model (see ``wrapper/generic.py``)?
    # DeepEnsemble says no: it takes builder functions and lists, which are no models either.
    _generic_objects = True

    def __new__(cls, model: Any = None, *args: Any, **kwargs: Any):
        """A Keras model gets ``cls`` itself (the compiled path); any other object gets the
        generated subclass ``generic_class(cls)``, so ``isinstance(wrapper, cls)`` holds."""
        if cls._generic_objects and model is not None and not is_keras_model(model):
            from al_experiments.wrapper.generic import GenericModelMixin, generic_class

            if not issubclass(cls, GenericModelMixin):
                return super().__new__(generic_class(cls))
        return super().__new__(cls)

    def __init__(
        self,
        model: Any,
        config: Config | None = None,
        name: str | None = None,
        model_type: str | None = None,
        checkpoint: Any = None,
        verbose: bool = False,
        checkpoint_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        reject_unknown_kwargs(self._owner_name(), kwargs, self._accepted_keywords())
        self._import_backend()
        if config is not None and not isinstance(config, Config):
            raise ValueError(f"config must be an al_experiments.Config, got {type(config).__name__}.")
        self._model = model
        self._config = config if config is not None else Config()
        self._name = name
        self._model_type = model_type
        self._verbose = verbose
        self._checkpoint_path = checkpoint_path or os.getcwd()
        self._classification = bool(kwargs.pop("classification", True))
        self._is_binary = bool(kwargs.pop("is_binary", False)) and self._classification
        reset = kwargs.pop("reset", "reinit")
        if reset not in RESET_POLICIES:
            raise ValueError(f"reset must be one of {', '.join(RESET_POLICIES)}; got {reset!r}.")
        self.reset_policy = reset
        self.fast_fit = bool(kwargs.pop("fast_fit", True))
        embedding_layer = kwargs.pop("embedding_layer", None)
        if embedding_layer is not None and not isinstance(embedding_layer, str):
            raise ValueError(f"embedding_layer must be a layer name (str) or None, got {embedding_layer!r}.")
        # Which layer ``embeddings`` reads: None = the input of the last Dense layer.
        self.embedding_layer = embedding_layer
        # tf_al's name for the last compile kwargs; unused here, kept for subclasses written for tf_al.
        self._compile_params: dict[str, Any] = {}
        # Set before any compile: sampling an uncompiled network must work (it did in tf_al).
        self._loss: Any = None
        self._metrics: list[Any] = []
        self._num_outputs: int | None = None  # found on first use: subclassed models build late
        self.eval_metrics: list[Any] = []
        self._id = uuid.uuid1()
        self._seed = 0
        self._round = 0
        self._resetter = None
        self._trainer = None
        self._samplers: dict[bool, Any] = {}
        self._consistent_samplers: dict[bool, Any] = {}  # by "outputs logits"
        self._embedders: dict[tuple, Any] = {}  # by (layer name, outputs logits)
        if getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None:
            self._remember_compile(loss=model.loss, metrics=_compiled_metrics(model))

    @classmethod
    def _owner_name(cls) -> str:
        """The class name users wrote (a generated generic class reports its base's name)."""
        return cls.__name__

    @classmethod
    def _accepted_keywords(cls) -> set[str]:
        """The keywords a constructor of ``cls`` takes: every ``__init__`` parameter along the
        class hierarchy (so ``members`` of DeepEnsemble, or a user subclass's own) plus the
        ones ``Model`` reads from ``**kwargs``."""
        inits = [klass.__dict__["__init__"] for klass in cls.__mro__ if "__init__" in klass.__dict__
                 and klass is not object]
        return signature_names(*inits) | set(MODEL_KEYWORDS)

    def _import_backend(self) -> None:
        import_tensorflow()

    # ------------------------------------------------------------------ naming and config
    def __str__(self) -> str:
        return self.get_model_name()

    def get_model_name(self, prefix: bool = True) -> str:
        if self._model_type and self._name and prefix:
            return f"{self._model_type}_{self._name}"
        if self._model_type:
            return self._model_type
        if self._name:
            return self._name
        return "model"

    def get_config_for(self, name: str) -> dict[str, Any]:
        """A copy of one config section: callers can never change the user's Config."""
        return self._config.section(name)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config.kwargs)

    def is_classification(self) -> bool:
        return self._classification

    def is_binary(self) -> bool:
        return self._is_binary

    def get_id(self) -> str:
        return str(self._id)

    def get_model(self):
        return self._model

    get_base_model = get_model

    def get_metric_names(self) -> list[str]:
        return [metric_name(m) for m in self.eval_metrics]

    def num_outputs(self) -> int:
        if self._num_outputs is None:
            from al_experiments.wrapper.compiled import output_width

            self._num_outputs = output_width(self._model)
        return self._num_outputs

    def set_seed(self, seed: int) -> None:
        """Seed of this model's per-round randomness (weights, shuffling, dropout)."""
        self._seed = int(seed)

    # ------------------------------------------------------------------ compile, reset
    def __call__(self, inputs: Any, **kwargs: Any):
        return self._model(inputs, **kwargs)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the Keras model; ``loss`` and ``metrics`` also define what ``evaluate`` reports."""
        if args:
            raise ValueError("Model.compile takes keyword arguments only (optimizer=..., loss=..., metrics=...).")
        self._model.compile(**kwargs)
        self._remember_compile(loss=kwargs.get("loss"), metrics=list(kwargs.get("metrics") or []))
        self._compile_params = dict(kwargs)

    def _remember_compile(self, loss: Any, metrics: list[Any]) -> None:
        self._loss = loss
        self._metrics = metrics
        self.eval_metrics = ([loss] if loss is not None else []) + list(metrics)
        self._trainer = None
        self._resetter = None

    def _ensure_ready(self):
        if getattr(self._model, "optimizer", None) is None or self._loss is None:
            raise ValueError(
                "The wrapped Keras model is not compiled: call wrapper.compile(optimizer=..., "
                "loss=..., metrics=[...]) before running the loop."
            )
        if self._resetter is None:
            from al_experiments.wrapper.reset import WeightResetter

            self._model.optimizer.build(self._model.trainable_variables)
            self._resetter = WeightResetter(self._model)
            self._resetter.snapshot_optimizer()
        return self._resetter

    def reset(self, pool: Any = None, dataset: Any = None, round_index: int | None = None) -> None:
        """Prepare the network for the next round according to ``reset_policy``.

        ``reinit`` draws fresh weights seeded by (seed, round) and resets the optimizer;
        ``initial`` restores the first weights and resets the optimizer; ``warm`` starts fresh in round 1
        and then keeps training the same weights and optimizer state.
        """
        resetter = self._ensure_ready()
        self._round = self._round + 1 if round_index is None else int(round_index)
        seed = derive_seed(self._seed, self._round, "weights")
        if self.reset_policy == "warm" and self._round > 1:
            resetter.reseed_layers(seed)
            return
        if self.reset_policy in ("reinit", "warm"):
            resetter.fresh_start(seed)
        else:
            resetter.restore_initial()
            resetter.reseed_layers(seed)
            resetter.reset_optimizer()

    def resume_state(self) -> dict[str, list[np.ndarray]] | None:
        """What a resumed job needs from this model to continue after the current round: the
        weights and optimizer state under ``reset="warm"``, nothing otherwise (``reinit`` redraws
        from (seed, round) and ``initial`` restores the weights it was built with)."""
        if self.reset_policy != "warm" or self._resetter is None:
            return None
        optimizer = self._model.optimizer
        return {"weights": [np.array(w) for w in self._model.get_weights()],
                "optimizer": [np.array(v) for v in optimizer.variables]}

    def restore_resume_state(self, state: dict[str, list[np.ndarray]]) -> None:
        """Load what ``resume_state`` returned (before the next round's ``reset``)."""
        self._ensure_ready()
        self._model.set_weights(list(state["weights"]))
        for variable, value in zip(self._model.optimizer.variables, state["optimizer"]):
            variable.assign(value)

    def clear_session(self) -> None:
        """Kept for tf_al compatibility. Nothing to clear: the wrapper reuses one network."""

    # ------------------------------------------------------------------ training
    def _fit_arguments(self, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        """``(x, y, params)`` of a ``fit`` call: the ``fit`` config section as defaults, explicit
        keywords winning, and a ``min_steps`` budget turned into epochs for this data."""
        params = {**self.get_config_for("fit"), **kwargs}
        if args:
            params["x"] = args[0]
            if len(args) > 1:
                params["y"] = args[1]
        x, y = params.pop("x", None), params.pop("y", None)
        if x is None or y is None:
            raise ValueError(f"{self._owner_name()}.fit needs inputs and targets: fit(x, y, ...).")
        min_steps = params.pop("min_steps", None)
        if min_steps is not None:
            params["epochs"] = epochs_for_steps(len(x), int(params.get("batch_size", 32)),
                                                int(params.get("epochs", 1)), int(min_steps))
        return x, y, params

    def fit(self, *args: Any, **kwargs: Any):
        """Train on ``x, y``; returns an object with a Keras-style ``history`` dict.

        The ``fit`` config section supplies defaults; explicit keyword arguments win. With
        ``min_steps``, at least that many gradient steps are taken (more epochs while the
        labelled set is small; see ``epochs_for_steps``).
        """
        x, y, params = self._fit_arguments(args, kwargs)
        self._ensure_ready()
        y = prepare_targets(y, self._loss, self.num_outputs())
        if self.fast_fit and set(params) <= _FAST_FIT_KEYS and params.get("shuffle", True):
            from al_experiments.wrapper.compiled import Trainer, fast_path_supported

            if fast_path_supported(self._metrics):
                if self._trainer is None:
                    self._trainer = Trainer(self._model, self._loss, self._metrics)
                history = self._trainer.fit(
                    x, y, epochs=int(params.get("epochs", 1)), batch_size=int(params.get("batch_size", 32)),
                    seed=derive_seed(self._seed, self._round, "fit"),
                )
                return SimpleNamespace(history=history)
        params.setdefault("verbose", 0)
        return self._model.fit(x, y, **params)

    def optimize(self, inputs: Any, targets: Any) -> dict[str, float] | None:
        """Hook run each round on the validation split; reports the validation metrics.

        Subclasses may tune hyper-parameters here (e.g. weight decay, as Gal et al. did).
        """
        return self.evaluate(inputs, targets, **self.get_config_for("eval"))

    # ------------------------------------------------------------------ prediction
    def _sampler(self, stochastic: bool):
        sampler = self._samplers.get(stochastic)
        if sampler is None:
            from al_experiments.wrapper.compiled import Sampler

            sampler = Sampler(self._model, stochastic=stochastic, softmax_outputs=self._outputs_logits())
            self._samplers[stochastic] = sampler
        return sampler

    def _outputs_logits(self) -> bool:
        return bool(getattr(self._loss, "from_logits", False)) if self._loss is not None else False

    def stochastic(self) -> bool:
        """Does this wrapper draw different predictions per sample?"""
        return False

    def predictive_samples(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities of shape ``(N, T, C)``: always with the sample axis.

        A deterministic model repeats its single prediction T times.
        """
        sampler = self._sampler(self.stochastic())
        return class_probabilities(sampler.sample(inputs, int(sample_size), batch_size))

    def sample_chunks(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None):
        """Like ``predictive_samples`` but yields ``(start, stop, probs)`` chunk by chunk."""
        sampler = self._sampler(self.stochastic())
        for start, stop, probs in sampler.chunks(inputs, int(sample_size), batch_size):
            yield start, stop, class_probabilities(probs)

    def predict(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        """Mean predicted class probabilities ``(N, C)``."""
        sample_size = int(kwargs.pop("sample_size", 1))
        batch_size = kwargs.pop("batch_size", None)
        if not self._draws_samples_itself():
            # Averaged inside the compiled call: the (N, T, C) samples never reach the host.
            if sample_size < 1:
                raise ValueError(f"sample_size must be >= 1, got {sample_size}.")
            sampler = self._sampler(self.stochastic())
            parts = [mean for _, _, mean in sampler.mean_chunks(inputs, sample_size, batch_size)]
            if parts:
                return np.concatenate(parts, axis=0)
        return self.predictive_samples(inputs, sample_size, batch_size).mean(axis=1)

    def _draws_samples_itself(self) -> bool:
        """Does a subclass produce its samples its own way? Then every shortcut through the
        compiled sampler is skipped and its ``sample_chunks``/``predictive_samples`` are used."""
        cls = type(self)
        return cls.sample_chunks is not Model.sample_chunks or cls.predictive_samples is not Model.predictive_samples

    def consistent_samples(self, inputs: Any, sample_size: int, seed: int,
                           batch_size: int | None = None) -> np.ndarray:
        """Jointly consistent class probabilities ``(N, T, C)`` float32.

        Sample t of *every* input is the same parameter draw (the same dropout masks), fixed by
        ``(seed, t)`` alone: whatever the chunking (``batch_size``), in separate calls with the
        same seed (pool candidates and a target set may be sampled apart), and for any
        ``sample_size`` (sample t of T=5 is sample t of T=100). Different seeds give different
        draws. This is what joint scores (BatchBALD, EPIG) need; per-point scores may use the
        cheaper independent ``predictive_samples``. Each noise layer keeps Keras' semantics
        (Dropout keeps a unit with probability 1 - rate and scales it by 1/(1 - rate)), so the
        samples have the distribution of the independent ones; every other layer runs in
        inference mode (BatchNormalization uses its moving statistics). One sigmoid unit gives
        the two columns ``[1 - p, p]``, as ``predictive_samples`` does.

        A deterministic ``Model`` repeats its single prediction T times (``seed`` is unused).
        Needs a Sequential or functional network whose noise layers sit at its top level; a
        subclass that draws its samples its own way raises ValueError.
        """
        sample_size = int(sample_size)
        if sample_size < 1:
            raise ValueError(f"sample_size must be >= 1, got {sample_size}.")
        if self._draws_samples_itself():
            raise ValueError(
                f"Consistent samples are not available for {type(self).__name__}, which draws its "
                "samples its own way; override consistent_samples there or use predictive_samples."
            )
        if not self.stochastic():
            return self.predictive_samples(inputs, sample_size, batch_size)
        return class_probabilities(self._consistent_sampler().sample(inputs, sample_size, int(seed), batch_size))

    def _consistent_sampler(self):
        samplers = self._consistent_samplers
        logits = self._outputs_logits()
        sampler = samplers.get(logits)
        if sampler is None:
            from al_experiments.wrapper.consistent import ConsistentSampler

            sampler = samplers[logits] = ConsistentSampler(self._model, softmax_outputs=logits)
        return sampler

    def embeddings(self, inputs: Any, batch_size: int | None = None, return_probs: bool = False):
        """Deterministic (inference-mode) embeddings ``(N, D)`` float32 of the inputs.

        By default the input of the network's last top-level Dense layer (for
        ``Dense(128) -> Dropout -> Dense(10)`` the 128 hidden activations); with the wrapper's
        ``embedding_layer=<layer name>`` the output of that layer instead (flattened). With
        ``return_probs=True`` also the class probabilities ``(N, C)`` of the same pass
        (softmax applied to logits; one sigmoid unit gives ``[1 - p, p]``). Compiled and
        chunked (``batch_size`` inputs per pass); needs a Sequential or functional network.
        """
        return self._embed(inputs, batch_size, return_probs, self.embedding_layer)

    def _embed(self, inputs: Any, batch_size: int | None, return_probs: bool, layer_name: str | None):
        embedders = self._embedders
        key = (layer_name, self._outputs_logits())
        embedder = embedders.get(key)
        if embedder is None:
            from al_experiments.wrapper.embedding import Embedder

            embedder = embedders[key] = Embedder(self._model, layer_name, softmax_outputs=key[1])
        return embedder.embed(inputs, batch_size, return_probs)

    def batch_prediction(self, inputs: Any, batch_size: int = 1, **kwargs: Any) -> np.ndarray:
        return self.predict(inputs, batch_size=batch_size, **kwargs)

    def evaluate(self, inputs: Any, targets: Any, **kwargs: Any) -> dict[str, float]:
        """``{loss_name: float, metric_name: float, ...}`` on the given data."""
        if len(inputs) != len(targets):
            raise ValueError(
                f"evaluate got {len(inputs)} inputs and {len(targets)} targets; pass one target per input."
            )
        self._ensure_ready()
        probs = self.predict(inputs, **kwargs)
        return self._scores(targets, probs)

    def _scores(self, targets: Any, probs: np.ndarray) -> dict[str, float]:
        raw = probs[:, 1:] if probs.shape[-1] == 2 and self.num_outputs() == 1 else probs
        y = prepare_targets(targets, self._loss, self.num_outputs())
        results: dict[str, float] = {}
        for index, metric in enumerate(self.eval_metrics):
            if index == 0 and metric is self._loss:
                results[metric_name(metric)] = loss_value(metric, y, _clip(raw))
            else:
                results[metric_name(metric)] = metric_value(metric, y, raw)
        return results

    # ------------------------------------------------------------------ queries
    def reduced_score_chunks(self, inputs: Any, sample_size: int, reduction: Callable,
                             batch_size: int | None = None):
        """Yield ``(start, stop, values)``: independent predictive samples of each chunk reduced
        inside the compiled sampler by ``reduction`` (a TensorFlow function of ``(B, T, C)``
        probabilities, see ``acquisition.graph_scores``), so the samples never reach the host.

        None where a subclass draws its samples its own way: then only ``sample_chunks`` applies.
        """
        if self._draws_samples_itself():
            return None
        classes = max(2, self.num_outputs())  # one sigmoid unit is scored as two classes
        sampler = self._sampler(self.stochastic())
        return sampler.score_chunks(inputs, int(sample_size), reduction, classes, batch_size)

    def get_query_fn(self, name: str) -> Callable[..., np.ndarray] | None:
        """tf_al's scorer: ``fn(inputs, sample_size=..., batch_size=...) -> scores`` for a
        per-point query function, chunk by chunk. None for ``random``; a batch strategy has no
        per-point scores (run it through ``AcquisitionFunction``)."""
        from al_experiments.acquisition import get_query
        from al_experiments.acquisition.round import point_scores

        strategy = get_query(name)
        if strategy.kind == "batch":
            raise ValueError(
                f"{strategy.name!r} selects whole batches and has no per-point scores: run it "
                f"through AcquisitionFunction({strategy.name!r}) or ActiveLearningLoop."
            )
        if not strategy.needs_samples:
            return None

        def score(inputs: Any, sample_size: int = 10, batch_size: int | None = None, **_: Any) -> np.ndarray:
            return point_scores(self, inputs, strategy, sample_size, batch_size)

        return score

    # The acquisition side scores through the building blocks directly; a subclass (or object)
    # that defines its own get_query_fn, as tf_al models did, is asked through it instead.
    get_query_fn.acquisition_dispatch = True

    # ------------------------------------------------------------------ weights on disk
    def _weights_file(self) -> str:
        return os.path.join(self._checkpoint_path, "model.weights.h5")

    def save_weights(self) -> str:
        from al_experiments.utils.atomic import replacing

        path = self._weights_file()
        with replacing(path, suffix=".weights.h5") as tmp:  # Keras insists on the suffix
            self._model.save_weights(tmp)
        return path

    def load_weights(self) -> None:
        self._model.load_weights(self._weights_file())

    def has_save_state(self) -> bool:
        """Are saved weights on disk? (No side effect: tf_al loaded them while checking.)"""
        return os.path.exists(self._weights_file())

    def disable_batch_norm(self) -> None:
        import keras

        for layer in self._model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def epochs_for_steps(size: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """``epochs``, or more so that training takes at least ``min_steps`` gradient steps.

    An epoch over ``size`` points at ``batch_size`` is ``ceil(size / batch_size)`` steps, so
    with 20 labels at batch 32, 50 epochs are only 50 steps: too few for a network trained from
    fresh weights to fit even 20 points, and an underfit network's uncertainty is noise. A step
    budget keeps the small early rounds trained as well as the later ones.
    """
    if min_steps < 1:
        raise ValueError(f"min_steps must be a whole number >= 1, got {min_steps}.")
    steps_per_epoch = max(1, math.ceil(size / max(1, batch_size)))
    return max(int(epochs), math.ceil(min_steps / steps_per_epoch))


def is_keras_model(obj: Any) -> bool:
    """Is ``obj`` a Keras layer or model (the compiled path)? Never imports Keras: an object
    can only be a Keras one if Keras is already imported."""
    keras = sys.modules.get("keras")
    layer = getattr(getattr(keras, "layers", None), "Layer", None)
    return layer is not None and isinstance(obj, layer)


def _clip(probs: np.ndarray) -> np.ndarray:
    # MC-averaged probabilities can hold exact zeros; keep the log-loss finite.
    return np.clip(probs, 1e-7, 1.0)


def _compiled_metrics(model) -> list[Any]:
    config = getattr(model, "_compile_config", None)
    metrics = None
    if config is not None:
        metrics = getattr(config, "config", {}).get("metrics")
    return list(metrics or [])

