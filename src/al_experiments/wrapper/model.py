"""``Model``: the base wrapper between a model and the active-learning loop (tf_al API).

The wrapper holds a backend that does the work for one kind of model: ``KerasBackend`` for a
Keras network (compiled training and sampling), ``ObjectBackend`` for any other object that
predicts class probabilities (a scikit-learn classifier, a numpy model), ``EnsembleBackend``
over the member wrappers of a ``DeepEnsemble``. The wrapper class keeps what is the user's:
the configuration, naming, seed and round, the reset policy, and whether it samples
stochastically (``McDropout``); it answers ``QueryModel`` (``interface.py``), declaring what it
supports. Predictive queries live in ``queries.QueryMethods``.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import numpy as np

from al_experiments.config import Config
from al_experiments.validation import Options, reject_unknown_kwargs, signature_names
from al_experiments.wrapper.keras_metrics import loss_value, metric_name, metric_value, prepare_targets
from al_experiments.wrapper.object_backend import ObjectBackend
from al_experiments.wrapper.queries import QueryMethods
from al_experiments.wrapper.training_protocol import epochs_for_steps

RESET_POLICIES = ("reinit", "initial", "warm")
# The keywords Model reads from **kwargs (tf_al's ``classification``/``is_binary`` and ours).
MODEL_KEYWORDS = ("classification", "is_binary", "reset", "fast_fit", "xla", "embedding_layer")


class Model(QueryMethods):
    """Wrap a compiled-or-not Keras model (or another model object) for active learning.

    Args:
        model: A Keras model (Sequential, functional or subclassed, built or not: one not built
            yet is built from the first data it sees) that outputs probabilities, or any other
            object with ``predict_proba``/``predict``/``__call__`` giving class probabilities
            ``(N, C)`` (and ``fit(x, y, **kw)`` to train), e.g. a scikit-learn classifier; its
            semantics are documented in ``wrapper/object_backend.py``.
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
            ``training.XLA_LAYERS``; Sequential, functional or subclassed): faster steps for a
            compile once per network. False keeps it on TensorFlow's graph path; dropout draws differ
            between the two, so a seed's results do too.
        embedding_layer: Name of the layer whose output ``embeddings`` returns (default None:
            the input of the last Dense layer).
        classification, is_binary: Problem kind (kept for tf_al compatibility).
    """

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
        reject_unknown_kwargs(type(self).__name__, kwargs, self._accepted_keywords())
        if config is not None and not isinstance(config, Config):
            raise ValueError(f"config must be an al_experiments.Config, got {type(config).__name__}.")
        self._config = config if config is not None else Config()
        self._name = name
        self._model_type = model_type
        self._verbose = verbose
        self.checkpoint_path = checkpoint_path or os.getcwd()
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
        self._id = uuid.uuid1()
        self._seed = 0
        self._round = 0
        self._backend = self._make_backend(model)

    def _make_backend(self, model: Any):
        """The backend for ``model``: Keras' for a Keras network, else the object backend."""
        if is_keras_model(model):
            # Imported here: TensorFlow loads only where a Keras network is wrapped.
            from al_experiments.wrapper.keras_backend import KerasBackend

            return KerasBackend(model)
        return ObjectBackend(model)

    @classmethod
    def _accepted_keywords(cls) -> set[str]:
        """The keywords a constructor of ``cls`` takes: every ``__init__`` parameter along the
        class hierarchy (so ``members`` of DeepEnsemble, or a user subclass's own) plus the
        ones ``Model`` reads from ``**kwargs``."""
        inits = [klass.__dict__["__init__"] for klass in cls.__mro__ if "__init__" in klass.__dict__
                 and klass is not object]
        return signature_names(*inits) | set(MODEL_KEYWORDS)

    @property
    def backend(self):
        """The backend that does the work for this kind of model (Keras, object, ensemble)."""
        return self._backend

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
        return self._backend.network

    get_base_model = get_model

    @property
    def eval_metrics(self) -> list[Any]:
        """What ``evaluate`` reports: the compiled loss first, then the metrics."""
        return self._backend.eval_metrics

    @eval_metrics.setter
    def eval_metrics(self, metrics: list[Any]) -> None:
        self._backend.eval_metrics = list(metrics)

    def get_metric_names(self) -> list[str]:
        return [metric_name(m) for m in self.eval_metrics]

    def num_outputs(self) -> int | None:
        """Output width (classes; 1 = one sigmoid unit); None while not known (a network not
        built yet, an object that has not predicted)."""
        return self._backend.num_outputs()

    def probe_num_outputs(self, inputs: Any) -> int | None:
        """``num_outputs``, building the network from (or predicting) ``inputs`` if needed."""
        return self._backend.probe_num_outputs(inputs)

    def set_seed(self, seed: int) -> None:
        """Seed of this model's per-round randomness (weights, shuffling, dropout)."""
        self._seed = int(seed)

    # ------------------------------------------------------------------ another job, same network
    def renewable(self) -> bool:
        """Can ``renew`` hand this network to another job? Only where the first round's reset
        draws every weight, the optimizer state and every random layer from the job's seed
        alone (``reinit`` and ``warm`` with known initialisers): the job then computes exactly
        what a freshly built network would."""
        return self._backend.renewable(self.reset_policy)

    def renew(self, config: Config) -> None:
        """Start another job on this network with ``config``: round 0, seed 0, a new id. The
        compiled training, sampling and reset functions are kept, so nothing is traced again."""
        if not self.renewable():
            raise ValueError(f"This {type(self).__name__} cannot be renewed: its first reset does not redraw "
                             "everything from the seed (reset='initial', or weights without a known initialiser).")
        self._config = config
        self._round, self._seed, self._id = 0, 0, uuid.uuid1()

    # ------------------------------------------------------------------ compile, reset
    def __call__(self, inputs: Any, **kwargs: Any):
        """The Keras network's own call; for another object its class probabilities ``(N, C)``."""
        return self._backend.forward(inputs, **kwargs)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Compile the model; ``loss`` and ``metrics`` also define what ``evaluate`` reports.
        ``metrics`` may name ``keras_metrics.CLASS_METRICS`` (balanced accuracy, macro-F1): only
        ``evaluate`` sees them. Another object than a Keras network only records them."""
        if args:
            raise ValueError(f"{type(self).__name__}.compile takes keyword arguments only "
                             "(optimizer=..., loss=..., metrics=...).")
        self._backend.compile(**kwargs)
        self._compile_params = dict(kwargs)

    def reset(self, pool: Any = None, dataset: Any = None, round_index: int | None = None) -> None:
        """Prepare the model for the next round according to ``reset_policy``.

        ``reinit`` draws fresh weights seeded by (seed, round) and resets the optimizer (another
        object: a fresh copy, its ``random_state`` set from (seed, round)); ``initial`` restores
        the first weights and resets the optimizer (a fresh copy, unchanged); ``warm`` starts
        fresh in round 1 and then keeps training the same weights and optimizer state.
        """
        round_index = self._round + 1 if round_index is None else int(round_index)
        self._backend.reset(self.reset_policy, self._seed, round_index, pool, dataset)
        self._round = round_index

    def resume_state(self) -> dict[str, list[np.ndarray]] | None:
        """What a resumed job needs from this model to continue after the current round: the
        trained state under ``reset="warm"``, nothing otherwise (``reinit`` redraws from
        (seed, round) and ``initial`` restores the weights it was built with)."""
        return self._backend.resume_state(self.reset_policy, self._round)

    def restore_resume_state(self, state: dict[str, list[np.ndarray]]) -> None:
        """Load what ``resume_state`` returned (before the next round's ``reset``)."""
        self._backend.restore_resume_state(state)

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
            raise ValueError(f"{type(self).__name__}.fit needs inputs and targets: fit(x, y, ...).")
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
        round's dataset's (given to ``reset``) or ``validation_data=(x, y)``. Another object
        than a Keras network gets ``fit(x, y, **params)`` with the keywords it accepts.
        """
        x, y, params = self._fit_arguments(args, kwargs)
        return self._backend.fit(x, y, params, seed=self._seed, round_index=self._round,
                                 fast_fit=self.fast_fit, xla=self.xla)

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
        self._backend.ensure_ready(inputs)
        probs = self.predict(inputs, **kwargs)
        return self._scores(targets, probs)

    def _scores(self, targets: Any, probs: np.ndarray) -> dict[str, float]:
        loss = self._backend.loss
        raw = probs[:, 1:] if probs.shape[-1] == 2 and self.num_outputs() == 1 else probs
        y = prepare_targets(targets, loss, self.num_outputs())
        results: dict[str, float] = {}
        for index, metric in enumerate(self.eval_metrics):
            if index == 0 and metric is loss:
                results[metric_name(metric)] = loss_value(metric, y, _clip(raw))
            else:
                results[metric_name(metric)] = metric_value(metric, y, raw)
        return results

    # ------------------------------------------------------------------ weights on disk
    def save_weights(self) -> str:
        """The model's weights (another object: the pickled object) under ``checkpoint_path``."""
        return self._backend.save_weights(self.checkpoint_path)

    def load_weights(self) -> None:
        self._backend.load_weights(self.checkpoint_path)

    def has_save_state(self) -> bool:
        """Are saved weights on disk? (No side effect: tf_al loaded them while checking.)"""
        return self._backend.has_save_state(self.checkpoint_path)

    def disable_batch_norm(self) -> None:
        """Freeze every BatchNormalization layer of the network."""
        self._backend.disable_batch_norm()


def is_keras_model(obj: Any) -> bool:
    """Is ``obj`` a Keras layer or model (the compiled path)? Never imports Keras: an object
    can only be a Keras one if Keras is already imported."""
    keras = sys.modules.get("keras")
    layer = getattr(getattr(keras, "layers", None), "Layer", None)
    return layer is not None and isinstance(obj, layer)


def _clip(probs: np.ndarray) -> np.ndarray:
    # MC-averaged probabilities can hold exact zeros; keep the log-loss finite.
    return np.clip(probs, 1e-7, 1.0)
