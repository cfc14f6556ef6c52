"""The Keras backend of a wrapper: one Keras network, trained by the compiled ``training.Trainer``
(Keras' ``fit`` for what it does not cover), queried through ``predictions.KerasPredictions``,
redrawn between rounds by ``reset.WeightResetter``, with the state a resumed job needs and the
weights on disk.

A network that is not built yet (a subclassed model never called) is built on first use from the
data, as Keras' own ``fit`` does: called once on the first input of the labelled set, the pool
or the inputs it is asked to predict. Imports TensorFlow.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from al_experiments.utils.atomic import replacing
from al_experiments.utils.seeding import derive_seed
from al_experiments.utils.quiet_tensorflow import import_tensorflow

import_tensorflow()  # quietly, before Keras imports it
import keras  # noqa: E402

from al_experiments.wrapper.sampling import nested_layers, output_width  # noqa: E402
from al_experiments.wrapper.interface import (  # noqa: E402
    CONSISTENT_SAMPLES,
    EMBEDDINGS,
    INDEPENDENT_SAMPLES,
    REDUCED_SCORES,
)
from al_experiments.wrapper.keras_metrics import is_class_metric, prepare_targets  # noqa: E402
from al_experiments.wrapper.predictions import KerasPredictions  # noqa: E402
from al_experiments.wrapper.reset import WeightResetter  # noqa: E402
from al_experiments.wrapper.training import Trainer, fast_path_supported  # noqa: E402
from al_experiments.wrapper.training_protocol import TrainingProtocol  # noqa: E402

# fit() keywords the compiled trainer handles itself; any other keyword means Keras' fit.
FAST_FIT_KEYS = {"epochs", "batch_size", "verbose", "shuffle", "x", "y"}
_SUPPORTED = {INDEPENDENT_SAMPLES, CONSISTENT_SAMPLES, REDUCED_SCORES, EMBEDDINGS}


class KerasBackend:
    """A Keras network behind a wrapper (``Model``, ``McDropout`` or an ensemble member).

    The wrapper passes what is its own (whether it samples stochastically, its seed and round,
    its reset policy and training switches) with each call; the backend keeps the network's
    state: its compile setup, compiled functions, initial weights and validation split.
    """

    def __init__(self, network: Any) -> None:
        self.network = network
        self.loss: Any = None
        self.metrics: list[Any] = []  # those Keras and the training step see
        self.eval_metrics: list[Any] = []  # what evaluate reports: the loss first, then the metrics
        self.trainer = None
        self.resetter: WeightResetter | None = None
        self.predictions = KerasPredictions(network)
        self.validation: tuple[Any, Any] | None = None  # the round's validation split (set by reset)
        self._num_outputs: int | None = None
        self._pending_state: dict[str, list[np.ndarray]] | None = None  # resumed before the network was built
        if getattr(network, "optimizer", None) is not None and getattr(network, "loss", None) is not None:
            self.remember_compile(network.loss, compiled_metrics(network))

    def supports(self, capability: str, stochastic: bool) -> bool:
        return capability in _SUPPORTED

    # ------------------------------------------------------------------ compile, build
    def compile(self, **kwargs: Any) -> None:
        metrics = list(kwargs.get("metrics") or [])
        self.network.compile(**{**kwargs, "metrics": [m for m in metrics if not is_class_metric(m)]})
        self.remember_compile(kwargs.get("loss"), metrics)

    def remember_compile(self, loss: Any, metrics: list[Any]) -> None:
        """``metrics`` may name ``keras_metrics.CLASS_METRICS`` (balanced accuracy, macro-F1):
        ``evaluate`` reports them; Keras and the training step never see them."""
        self.loss = loss
        self.metrics = [m for m in metrics if not is_class_metric(m)]
        self.eval_metrics = ([loss] if loss is not None else []) + list(metrics)
        self.trainer = None
        self.resetter = None

    @property
    def outputs_logits(self) -> bool:
        return bool(getattr(self.loss, "from_logits", False)) if self.loss is not None else False

    def sampler(self, stochastic: bool):
        """The compiled independent sampler this network is sampled with."""
        return self.predictions.sampler(stochastic, self.outputs_logits)

    def consistent_sampler(self):
        """The compiled consistent sampler this network is sampled with."""
        return self.predictions.consistent_sampler(self.outputs_logits)

    def build_from(self, inputs: Any) -> None:
        """Build a network that is not built yet by calling it on the first of ``inputs``."""
        if getattr(self.network, "built", True) or inputs is None or len(inputs) == 0:
            return
        self.network(np.asarray(inputs[:1]), training=False)
        self._num_outputs = None

    def _require_built(self) -> None:
        if not getattr(self.network, "built", True):
            raise ValueError(
                f"The Keras model {self.network.name!r} is not built yet and no data has reached it: it is "
                "built on first use from the data (reset with the pool, fit or predict); call it on a "
                "batch first to use it before that."
            )

    def ensure_ready(self, inputs: Any = None) -> WeightResetter:
        """Build the network from ``inputs`` if needed and check it is compiled; the first time,
        keep its initial weights and optimizer state for the resets."""
        self.build_from(inputs)
        if getattr(self.network, "optimizer", None) is None or self.loss is None:
            raise ValueError(
                "The wrapped Keras model is not compiled: call wrapper.compile(optimizer=..., "
                "loss=..., metrics=[...]) before running the loop."
            )
        if self.resetter is None:
            self._require_built()
            self.network.optimizer.build(self.network.trainable_variables)
            self.resetter = WeightResetter(self.network)
            self.resetter.snapshot_optimizer()
        return self.resetter

    def num_outputs(self) -> int | None:
        """Output units (classes); None while the network is not built."""
        if self._num_outputs is None:
            if not getattr(self.network, "built", True):
                return None
            self._num_outputs = output_width(self.network)
        return self._num_outputs

    def probe_num_outputs(self, inputs: Any) -> int | None:
        self.build_from(inputs)
        return self.num_outputs()

    def _width(self) -> int:
        self._require_built()
        return self.num_outputs()

    # ------------------------------------------------------------------ reset, resume
    def reset(self, policy: str, seed: int, round_index: int, pool: Any = None, dataset: Any = None) -> None:
        """Redraw, restore or keep the weights for ``round_index`` (see ``Model.reset``)."""
        self.build_from(_first_inputs(pool, dataset))
        resetter = self.ensure_ready()
        if self._pending_state is not None:
            self._restore(self._pending_state)
            self._pending_state = None
        has_validation = dataset is not None and getattr(dataset, "has_eval_set", lambda: False)()
        self.validation = dataset.get_eval_split() if has_validation else None  # for early stopping
        weights_seed = derive_seed(seed, round_index, "weights")
        if policy == "warm" and round_index > 1:
            resetter.reseed_layers(weights_seed)
            return
        if policy in ("reinit", "warm"):
            resetter.fresh_start(weights_seed)
        else:
            resetter.restore_initial()
            resetter.reseed_layers(weights_seed)
            resetter.reset_optimizer()

    def renewable(self, policy: str) -> bool:
        return policy in ("reinit", "warm") and self.resetter is not None and self.resetter.can_redraw

    def resume_state(self, policy: str, round_index: int) -> dict[str, list[np.ndarray]] | None:
        """The weights and optimizer state under ``reset="warm"``, nothing otherwise (``reinit``
        redraws from (seed, round) and ``initial`` restores the weights it was built with)."""
        if policy != "warm" or self.resetter is None:
            return None
        optimizer = self.network.optimizer
        return {"weights": [np.array(w) for w in self.network.get_weights()],
                "optimizer": [np.array(v) for v in optimizer.variables]}

    def restore_resume_state(self, state: dict[str, list[np.ndarray]]) -> None:
        if "weights" not in state:
            raise ValueError(
                f"This model state holds {sorted(state)}, not the weights a Keras wrapper writes; it was "
                "saved by a wrapper of another kind of model: start afresh."
            )
        if not getattr(self.network, "built", True):
            self._pending_state = dict(state)  # restored at the next reset, once built from the pool
            return
        self._restore(state)

    def _restore(self, state: dict[str, list[np.ndarray]]) -> None:
        self.ensure_ready()
        self.network.set_weights(list(state["weights"]))
        for variable, value in zip(self.network.optimizer.variables, state["optimizer"]):
            variable.assign(value)

    # ------------------------------------------------------------------ training
    def fit(self, x: Any, y: Any, params: dict[str, Any], seed: int, round_index: int,
            fast_fit: bool = True, xla: bool = True):
        """Train on ``x, y`` (see ``Model.fit``); returns an object with a ``history`` dict."""
        protocol = TrainingProtocol.pop_from(params)
        self.ensure_ready(x)
        y = prepare_targets(y, self.loss, self.num_outputs())
        if protocol.plain:
            return self._fit_epochs(x, y, params, derive_seed(seed, round_index, "fit"), fast_fit, xla)
        return self._fit_by_protocol(x, y, params, protocol, seed, round_index, fast_fit, xla)

    def _fit_by_protocol(self, x: Any, y: np.ndarray, params: dict[str, Any], protocol: TrainingProtocol,
                         seed: int, round_index: int, fast_fit: bool, xla: bool):
        """Epoch by epoch: each on its own draw of ``epoch_samples`` points (or the whole
        labelled set), then, with early stopping, a deterministic validation pass."""
        validation = protocol.validation if protocol.validation is not None else self.validation
        if protocol.patience is not None and validation is None:
            raise ValueError(
                f"Early stopping (patience={protocol.patience}) needs a validation split: set "
                "dataset.val_size (or pass validation_data=(x, y)), or set patience to null."
            )
        epochs = int(params.pop("epochs", 1))
        draws = np.random.default_rng(derive_seed(seed, round_index, "epoch_samples"))
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
                                      derive_seed(seed, round_index, "fit", epoch), fast_fit, xla)
            for key, values in dict(getattr(result, "history", result) or {}).items():
                history.setdefault(key, []).extend(list(values)[-1:])
            if protocol.patience is None:
                continue
            scores = self.validation_scores(*validation)
            for key, value in scores.items():
                history.setdefault(f"val_{key}", []).append(value)
            score = scores["accuracy"] if protocol.monitor == "accuracy" else -scores["loss"]
            if best_score is None or score > best_score:  # a tie is no improvement
                best_score, best_weights, best_epoch, waited = score, self.network.get_weights(), epoch, 0
            else:
                waited += 1
                if waited >= protocol.patience:
                    break
        if best_weights is not None:
            self.network.set_weights(best_weights)
            history["best_epoch"] = [float(best_epoch)]
        history["epochs_run"] = [float(epoch)]
        return SimpleNamespace(history=history)

    def validation_scores(self, x_val: Any, y_val: Any) -> dict[str, float]:
        """Accuracy and mean negative log-likelihood of the deterministic network (dropout
        off, as the BatchBALD authors validated) on the validation split."""
        sampler = self.sampler(False)
        probs = np.concatenate([mean for _, _, mean in sampler.mean_chunks(x_val, 1, None)], axis=0)
        y = np.asarray(y_val)
        ids = y.argmax(axis=-1) if y.ndim == 2 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)
        picked = probs[np.arange(len(ids)), ids]
        return {"accuracy": float(np.mean(probs.argmax(axis=-1) == ids)),
                "loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))}

    def _fit_epochs(self, x: Any, y: np.ndarray, params: dict[str, Any], seed: int, fast_fit: bool, xla: bool):
        """``params["epochs"]`` epochs over ``x, y``: the compiled trainer where it applies,
        else Keras' ``fit``."""
        if fast_fit and set(params) <= FAST_FIT_KEYS and params.get("shuffle", True):
            if fast_path_supported(self.metrics):
                if self.trainer is None:
                    self.trainer = Trainer(self.network, self.loss, self.metrics, xla=xla)
                history = self.trainer.fit(
                    x, y, epochs=int(params.get("epochs", 1)), batch_size=int(params.get("batch_size", 32)),
                    seed=seed,
                )
                return SimpleNamespace(history=history)
        params.setdefault("verbose", 0)
        return self.network.fit(x, y, **params)

    # ------------------------------------------------------------------ queries
    def forward(self, inputs: Any, **kwargs: Any):
        """The network's own call (``Model.__call__``)."""
        return self.network(inputs, **kwargs)

    def sample_chunks(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool):
        self.build_from(inputs)
        return self.predictions.sample_chunks(inputs, sample_size, batch_size, stochastic, self.outputs_logits)

    def predictive_samples(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool):
        self.build_from(inputs)
        return self.predictions.predictive_samples(inputs, sample_size, batch_size, stochastic, self.outputs_logits)

    def predict(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool) -> np.ndarray:
        self.build_from(inputs)
        return self.predictions.predict(inputs, sample_size, batch_size, stochastic, self.outputs_logits)

    def consistent_samples(self, inputs: Any, sample_size: int, seed: int, batch_size: int | None,
                           stochastic: bool) -> np.ndarray:
        self.build_from(inputs)
        return self.predictions.consistent_samples(inputs, sample_size, seed, batch_size, stochastic,
                                                   self.outputs_logits)

    def reduced_score_chunks(self, inputs: Any, sample_size: int, reduction: Callable, batch_size: int | None,
                             stochastic: bool):
        self.build_from(inputs)
        classes = max(2, self._width())  # one sigmoid unit is scored as two classes
        return self.predictions.reduced_score_chunks(inputs, sample_size, reduction, classes, batch_size,
                                                     stochastic, self.outputs_logits)

    def consistent_score_chunks(self, inputs: Any, sample_size: int, seed: int, reduction: Callable,
                                batch_size: int | None, stochastic: bool):
        self.build_from(inputs)
        classes = max(2, self._width())
        return self.predictions.consistent_score_chunks(inputs, sample_size, seed, reduction, classes, batch_size,
                                                        stochastic, self.outputs_logits)

    def embeddings(self, inputs: Any, batch_size: int | None, return_probs: bool, layer_name: str | None):
        self.build_from(inputs)
        return self.predictions.embeddings(inputs, batch_size, return_probs, layer_name, self.outputs_logits)

    def decision_values(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
        raise ValueError(
            "A Keras network gives class probabilities, not decision values; score it with its "
            "predictive samples."
        )

    # ------------------------------------------------------------------ weights on disk
    @staticmethod
    def weights_file(directory: str) -> str:
        return os.path.join(directory, "model.weights.h5")

    def save_weights(self, directory: str) -> str:
        path = self.weights_file(directory)
        with replacing(path, suffix=".weights.h5") as tmp:  # Keras insists on the suffix
            self.network.save_weights(tmp)
        return path

    def load_weights(self, directory: str) -> None:
        self.network.load_weights(self.weights_file(directory))

    def has_save_state(self, directory: str) -> bool:
        return os.path.exists(self.weights_file(directory))

    def disable_batch_norm(self) -> None:
        for layer in nested_layers(self.network, include_self=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def _first_inputs(pool: Any, dataset: Any) -> Any:
    """Inputs a network not built yet can be built from: the pool's, else the dataset's."""
    inputs = getattr(pool, "inputs", None)
    if inputs is None and dataset is not None and callable(getattr(dataset, "get_train_inputs", None)):
        inputs = dataset.get_train_inputs()
    return inputs


def compiled_metrics(network: Any) -> list[Any]:
    """The metrics a network was compiled with, as objects or names."""
    metrics = (network.get_compile_config() or {}).get("metrics") or []
    # Metric objects come back serialized; names such as "accuracy" stay names.
    return [keras.metrics.get(metric) if isinstance(metric, dict) else metric for metric in metrics]
