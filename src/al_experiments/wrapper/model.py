"""``Model``: the base wrapper between a Keras network and the active-learning loop (tf_al API).

This module holds its construction, configuration, compile bookkeeping, training and
evaluation; predictions live in ``predictions.py`` and reset, resume and saved weights in
``weights.py`` (mixins of this class). Training is compiled (see ``training.py``); anything the
fast trainer does not cover (callbacks, validation data, sample weights, non-accuracy metrics)
goes through Keras' ``fit``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from al_experiments.config import Config
from al_experiments.utils.seeding import derive_seed
from al_experiments.utils.tf_import import import_tensorflow
from al_experiments.validation import (
    WHOLE_AT_LEAST_1,
    Options,
    optional,
    reject_unknown_kwargs,
    signature_names,
)
from al_experiments.wrapper.interface import ActiveModel
from al_experiments.wrapper.keras_metrics import (
    is_class_metric,
    loss_value,
    metric_name,
    metric_value,
    prepare_targets,
)
from al_experiments.wrapper.predictions import PredictionMixin
from al_experiments.wrapper.weights import WeightsMixin

log = logging.getLogger(__name__)

RESET_POLICIES = ("reinit", "initial", "warm")
# The keywords Model reads from **kwargs (tf_al's ``classification``/``is_binary`` and ours).
MODEL_KEYWORDS = ("classification", "is_binary", "reset", "fast_fit", "xla", "embedding_layer")
# fit() keywords the compiled trainer handles itself; any other keyword means Keras' fit.
_FAST_FIT_KEYS = {"epochs", "batch_size", "verbose", "shuffle", "x", "y"}


class Model(PredictionMixin, WeightsMixin, ActiveModel):
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
        xla: Let the compiled trainer run a network of dense layers through XLA (default True;
            ``training.XLA_LAYERS``): faster steps for a compile once per network. False keeps it on TensorFlow's graph path; dropout draws differ
            between the two, so a seed's results do too.
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
        Options(RESET_POLICIES).check("reset", reset)
        self.reset_policy = reset
        self.fast_fit = bool(kwargs.pop("fast_fit", True))
        self.xla = bool(kwargs.pop("xla", True))
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
        self._validation: tuple[Any, Any] | None = None  # the round's validation split (set by reset)
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

    # ------------------------------------------------------------------ another job, same network
    def renewable(self) -> bool:
        """Can ``renew`` hand this network to another job? Only where the first round's reset
        draws every weight, the optimizer state and every random layer from the job's seed
        alone (``reinit`` and ``warm`` with known initialisers): the job then computes exactly
        what a freshly built network would."""
        resetter = self._resetter
        return self.reset_policy in ("reinit", "warm") and resetter is not None and resetter.can_redraw

    def renew(self, config: Config) -> None:
        """Start another job on this network with ``config``: round 0, seed 0, a new id. The
        compiled training, sampling and reset functions are kept, so nothing is traced again."""
        if not self.renewable():
            raise ValueError(f"This {self._owner_name()} cannot be renewed: its first reset does not redraw "
                             "everything from the seed (reset='initial', or weights without a known initialiser).")
        self._config = config
        self._round, self._seed, self._id = 0, 0, uuid.uuid1()

    # ------------------------------------------------------------------ compile, reset
    def __call__(self, inputs: Any, **kwargs: Any):
        return self._model(inputs, **kwargs)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the Keras model; ``loss`` and ``metrics`` also define what ``evaluate`` reports."""
        if args:
            raise ValueError("Model.compile takes keyword arguments only (optimizer=..., loss=..., metrics=...).")
        metrics = list(kwargs.get("metrics") or [])
        self._model.compile(**{**kwargs, "metrics": [m for m in metrics if not is_class_metric(m)]})
        self._remember_compile(loss=kwargs.get("loss"), metrics=metrics)
        self._compile_params = dict(kwargs)

    def _remember_compile(self, loss: Any, metrics: list[Any]) -> None:
        """``metrics`` may name ``keras_metrics.CLASS_METRICS`` (balanced accuracy, macro-F1):
        ``evaluate`` reports them; Keras and the training step never see them."""
        self._loss = loss
        self._metrics = [m for m in metrics if not is_class_metric(m)]
        self.eval_metrics = ([loss] if loss is not None else []) + list(metrics)
        self._trainer = None
        self._resetter = None

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
        labelled set is small; see ``epochs_for_steps``). The papers' protocols (see
        ``TrainingProtocol``): ``patience`` stops training when the validation ``monitor``
        (``accuracy`` or ``loss``) has not improved for that many epochs and restores the
        weights of the best epoch (``epochs`` is then the most epochs); ``epoch_samples`` makes
        an epoch that many labelled points drawn with replacement. The validation split is the
        round's dataset's (given to ``reset``) or ``validation_data=(x, y)``.
        """
        x, y, params = self._fit_arguments(args, kwargs)
        protocol = TrainingProtocol.pop_from(params)
        self._ensure_ready()
        y = prepare_targets(y, self._loss, self.num_outputs())
        if protocol.plain:
            return self._fit_epochs(x, y, params, derive_seed(self._seed, self._round, "fit"))
        return self._fit_by_protocol(x, y, params, protocol)

    def _fit_by_protocol(self, x: Any, y: np.ndarray, params: dict[str, Any], protocol: "TrainingProtocol"):
        """Epoch by epoch: each on its own draw of ``epoch_samples`` points (or the whole
        labelled set), then, with early stopping, a deterministic validation pass."""
        validation = protocol.validation if protocol.validation is not None else self._validation
        if protocol.patience is not None and validation is None:
            raise ValueError(
                f"Early stopping (patience={protocol.patience}) needs a validation split: set "
                "dataset.val_size (or pass validation_data=(x, y)), or set patience to null."
            )
        epochs = int(params.pop("epochs", 1))
        draws = np.random.default_rng(derive_seed(self._seed, self._round, "epoch_samples"))
        x = np.asarray(x)
        history: dict[str, list[float]] = {}
        best_score, best_weights, best_epoch, waited = None, None, 0, 0
        for epoch in range(1, epochs + 1):
            if protocol.epoch_samples is not None:
                rows = draws.integers(0, len(x), int(protocol.epoch_samples))
                xe, ye = x[rows], y[rows]
            else:
                xe, ye = x, y
            result = self._fit_epochs(xe, ye, {**params, "epochs": 1},
                                      derive_seed(self._seed, self._round, "fit", epoch))
            for key, values in dict(getattr(result, "history", result) or {}).items():
                history.setdefault(key, []).extend(list(values)[-1:])
            if protocol.patience is None:
                continue
            scores = self._validation_scores(*validation)
            for key, value in scores.items():
                history.setdefault(f"val_{key}", []).append(value)
            score = scores["accuracy"] if protocol.monitor == "accuracy" else -scores["loss"]
            if best_score is None or score > best_score:  # a tie is no improvement
                best_score, best_weights, best_epoch, waited = score, self._model.get_weights(), epoch, 0
            else:
                waited += 1
                if waited >= protocol.patience:
                    break
        if best_weights is not None:
            self._model.set_weights(best_weights)
            history["best_epoch"] = [float(best_epoch)]
        history["epochs_run"] = [float(epoch)]
        return SimpleNamespace(history=history)

    def _validation_scores(self, x_val: Any, y_val: Any) -> dict[str, float]:
        """Accuracy and mean negative log-likelihood of the deterministic network (dropout
        off, as the BatchBALD authors validated) on the validation split."""
        sampler = self._sampler(False)
        probs = np.concatenate([mean for _, _, mean in sampler.mean_chunks(x_val, 1, None)], axis=0)
        y = np.asarray(y_val)
        ids = y.argmax(axis=-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)
        picked = probs[np.arange(len(ids)), ids]
        return {"accuracy": float(np.mean(probs.argmax(axis=-1) == ids)),
                "loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))}

    def _fit_epochs(self, x: Any, y: np.ndarray, params: dict[str, Any], seed: int):
        """``params["epochs"]`` epochs over ``x, y``: the compiled trainer where it applies,
        else Keras' ``fit``."""
        if self.fast_fit and set(params) <= _FAST_FIT_KEYS and params.get("shuffle", True):
            from al_experiments.wrapper.training import Trainer, fast_path_supported

            if fast_path_supported(self._metrics):
                if self._trainer is None:
                    self._trainer = Trainer(self._model, self._loss, self._metrics, xla=self.xla)
                history = self._trainer.fit(
                    x, y, epochs=int(params.get("epochs", 1)), batch_size=int(params.get("batch_size", 32)),
                    seed=seed,
                )
                return SimpleNamespace(history=history)
        params.setdefault("verbose", 0)
        return self._model.fit(x, y, **params)

    def optimize(self, inputs: Any, targets: Any) -> dict[str, float] | None:
        """Hook run each round on the validation split; reports the validation metrics.

        Subclasses may tune hyper-parameters here (e.g. weight decay, as Gal et al. did).
        """
        return self.evaluate(inputs, targets, **self.get_config_for("eval"))

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


MONITORS = ("accuracy", "loss")


@dataclass(frozen=True)
class TrainingProtocol:
    """How a round's training is paced beyond plain epochs (the ``fit`` section's keys).

    ``patience``: early stopping on the validation split after that many epochs without an
    improvement of ``monitor`` (``accuracy``: higher is better; ``loss``: the mean negative
    log-likelihood, lower is better), restoring the best epoch's weights; None: no early
    stopping. ``epoch_samples``: an epoch is that many labelled points drawn with replacement
    (BatchBALD's 5,056), so small labelled sets still get steps; None: one pass over the set.
    """

    patience: int | None = None
    monitor: str = "accuracy"
    epoch_samples: int | None = None
    validation: tuple[Any, Any] | None = None

    @classmethod
    def pop_from(cls, params: dict[str, Any]) -> "TrainingProtocol":
        """Take the protocol's keys out of ``fit`` keywords and check them."""
        patience = params.pop("patience", None)
        monitor = params.pop("monitor", None) or "accuracy"
        epoch_samples = params.pop("epoch_samples", None)
        validation = params.pop("validation_data", None) if patience is not None else None
        optional(WHOLE_AT_LEAST_1).check("patience", patience)
        optional(WHOLE_AT_LEAST_1).check("epoch_samples", epoch_samples)
        Options(MONITORS).check("monitor", monitor)
        return cls(patience, monitor, epoch_samples, None if validation is None else tuple(validation))

    @property
    def plain(self) -> bool:
        return self.patience is None and self.epoch_samples is None


def epochs_for_steps(size: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """``epochs``, or more so that training takes at least ``min_steps`` gradient steps.

    An epoch over ``size`` points at ``batch_size`` is ``ceil(size / batch_size)`` steps, so
    with 20 labels at batch 32, 50 epochs are only 50 steps: too few for a network trained from
    fresh weights to fit even 20 points, and an underfit network's uncertainty is noise. A step
    budget keeps the small early rounds trained as well as the later ones.
    """
    WHOLE_AT_LEAST_1.check("min_steps", min_steps)
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
    import keras

    metrics = (model.get_compile_config() or {}).get("metrics") or []
    # Metric objects come back serialized; names such as "accuracy" stay names.
    return [keras.metrics.get(metric) if isinstance(metric, dict) else metric for metric in metrics]

