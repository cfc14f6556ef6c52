"""The object backend of a wrapper: any model that is not a Keras one (tf_al took "a Tensorflow
or pytorch module"; here anything that predicts class probabilities).

``Model(obj)`` and ``McDropout(obj)`` hold an ``ObjectBackend`` when ``obj`` is not a Keras
model; the wrapper class stays the one asked for (``isinstance``, ``stochastic()``, naming,
``evaluate``'s ``sample_size`` and a user subclass's own methods are its own), and the wrapper
tells the backend with each call whether it samples stochastically.

The object's contract (everything returned as array-likes, converted with ``np.asarray``):

* probabilities: ``predict_proba(x)`` if it has one, else ``predict(x)``, else ``obj(x)``, each
  returning class probabilities ``(N, C)``; one column is one sigmoid unit and becomes
  ``[1 - p, p]``, as on the Keras path. A stochastic wrapper (``McDropout``) makes one call per
  sample; if ``obj.__call__`` has a parameter named ``training`` the samples are
  ``obj(x, training=True)`` (tf_al's MC-dropout convention), otherwise the method above, relying
  on the object's own randomness. A deterministic wrapper (``Model``) makes one call (with
  ``training=False`` where ``__call__`` is used and takes it) and repeats it T times.
  Integer outputs are cast to float64; float outputs keep their dtype. Inputs are passed as
  given, in chunks of ``batch_size`` rows (default ``DEFAULT_ROWS``).
* ``fit(x, y, **params)`` where training is needed, called with the ``fit`` config section and
  the loop's keywords filtered to what its signature accepts (all of them if it takes
  ``**kwargs``). The targets are passed as stored in the pool. ``fit`` returns an object whose
  ``history`` dict is kept when it has one, so the result has a (possibly empty) ``history``.
* a classifier without probabilities (no ``predict_proba``; ``predict`` returns labels): its
  labels become one-hot probabilities (evaluation from ``predict``), and where it has a
  ``decision_function`` the margin and least-confidence strategies rank by it (binary:
  ``|f(x)|``; several classes: the top two values, or the top one).
* probability columns are laid out by class id over the round's dataset's classes: a column
  per entry of sklearn's ``classes_`` (which lacks a class the labelled set lacks) is moved to
  that class's id, and a class the object never saw gets probability 0.
* optional ``embeddings(x) -> (N, D)`` (Core-set, BADGE; without it the input features, flattened) and
  ``consistent_samples(x, sample_size, seed) -> (N, T, C)`` (BatchBALD, EPIG); a deterministic
  wrapper repeats its prediction for the latter, as the Keras path does.

``compile(loss=..., metrics=[...])`` only records what ``evaluate`` reports (an optimizer is
accepted and ignored); evaluation runs the numpy/Keras helpers of ``keras_metrics`` on the
predicted probabilities. Never compiled, ``evaluate`` reports ``accuracy``.

Reset between rounds: the backend keeps a ``copy.deepcopy`` of the object as it was wrapped.
``reinit`` starts every round from a fresh copy whose sklearn-style ``random_state``
parameter(s) (``get_params``/``set_params``, nested ``<step>__random_state`` too) are set to
``derive_seed(seed, round, "weights")``; ``initial`` starts from a fresh copy unchanged;
``warm`` starts round 1 like ``reinit`` and then keeps the trained object. ``resume_state``
(warm only) pickles the object into a uint8 array, which the checkpoint's ``.npz`` store
keeps like weights; ``save_weights`` pickles it to ``<checkpoint_path>/model.pkl`` atomically.

Nothing here imports TensorFlow; evaluating a loss given by name imports Keras.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from al_experiments.utils.atomic import atomic_write_with
from al_experiments.utils.seeding import derive_seed
from al_experiments.validation import WHOLE_AT_LEAST_1, class_labels, optional
from al_experiments.wrapper.interface import CONSISTENT_SAMPLES, DECISION_VALUES, EMBEDDINGS, INDEPENDENT_SAMPLES
from al_experiments.wrapper.keras_metrics import class_probabilities

log = logging.getLogger(__name__)

DEFAULT_ROWS = 4096  # inputs per call of the object when no batch_size is given


def accepts_training(obj: Any) -> bool:
    """Does ``obj.__call__`` have a parameter named ``training``? (``**kwargs`` alone does not
    count: a torch module's ``__call__`` takes anything and passes it on to ``forward``.)"""
    if not callable(obj):
        return False
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("training")
    return parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


def fit_keywords(fit: Callable) -> set[str] | None:
    """The keywords ``fit`` accepts after ``(x, y)``; None if it takes ``**kwargs``."""
    try:
        parameters = list(inspect.signature(fit).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    bound = {p.name for p in positional[:2]}  # x and y are passed positionally
    return {p.name for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in bound}


def reseed(obj: Any, seed: int) -> bool:
    """Set every sklearn-style ``random_state`` parameter of ``obj`` to ``seed``; True if any."""
    get_params, set_params = getattr(obj, "get_params", None), getattr(obj, "set_params", None)
    if not callable(get_params) or not callable(set_params):
        return False
    try:
        params = get_params(deep=True)
    except TypeError:
        params = get_params()
    keys = [k for k in params if k == "random_state" or str(k).endswith("__random_state")]
    if keys:
        set_params(**{key: int(seed) for key in keys})
    return bool(keys)


class ObjectBackend:
    """An object that is not a Keras model behind a wrapper (contract in the module docstring)."""

    def __init__(self, model: Any) -> None:
        self.network = model
        self.class_count: int | None = None  # the dataset's classes, learnt at reset
        self._num_outputs: int | None = None
        self.remember_compile(loss=None, metrics=[])  # attributes named loss/optimizer mean nothing here
        try:
            self._initial = copy.deepcopy(model)
            self._copy_error: str | None = None
        except Exception as exc:  # noqa: BLE001 - any failure to copy: reported when a copy is needed
            self._initial = None
            self._copy_error = f"{type(exc).__name__}: {exc}"

    def _object_name(self) -> str:
        return type(self.network).__name__

    def supports(self, capability: str, stochastic: bool) -> bool:
        if capability in (INDEPENDENT_SAMPLES, EMBEDDINGS):
            return True
        if capability == CONSISTENT_SAMPLES:
            return not stochastic or callable(getattr(self.network, "consistent_samples", None))
        if capability == DECISION_VALUES:
            return callable(getattr(self.network, "decision_function", None)) and \
                not callable(getattr(self.network, "predict_proba", None))
        return False  # no compiled sampler to reduce scores in

    # ------------------------------------------------------------------ compile, reset
    def compile(self, optimizer: Any = None, loss: Any = None, metrics: Any = None, **kwargs: Any) -> None:
        """Record ``loss`` and ``metrics`` for ``evaluate``; the optimizer and any other compile
        keyword are accepted and ignored (the object trains itself in its ``fit``)."""
        self.remember_compile(loss=loss, metrics=list(metrics or []))

    def remember_compile(self, loss: Any, metrics: list[Any]) -> None:
        self.loss = loss
        self.metrics = list(metrics)
        self.eval_metrics = ([loss] if loss is not None else []) + list(metrics)
        if not self.eval_metrics:
            self.eval_metrics = ["accuracy"]  # never compiled (or nothing to report): accuracy

    def ensure_ready(self, inputs: Any = None) -> None:
        """Nothing to build: an object that cannot predict says so when asked to."""

    def reset(self, policy: str, seed: int, round_index: int, pool: Any = None, dataset: Any = None) -> None:
        """Prepare the object for round ``round_index`` according to ``policy``.

        ``reinit``: a fresh deep copy of the object as wrapped, its ``random_state``
        parameter(s) set to ``derive_seed(seed, round, "weights")`` where it has them;
        ``initial``: a fresh deep copy, unchanged; ``warm``: like ``reinit`` in round 1, then
        the trained object is kept.
        """
        num_classes = getattr(dataset, "num_classes", None)
        if num_classes is not None:  # the columns every prediction is laid out in (see _aligned)
            self.class_count = num_classes()
        if policy == "warm" and round_index > 1:
            return
        if self._initial is None:
            if policy == "warm":
                return  # nothing to start afresh from: keep the object as wrapped
            raise ValueError(
                f"reset={policy!r} starts every round from a copy of the wrapped "
                f"{self._object_name()}, which cannot be deep-copied ({self._copy_error}); make it "
                "copyable or pass reset='warm'."
            )
        fresh = copy.deepcopy(self._initial)
        if policy in ("reinit", "warm"):
            reseed(fresh, derive_seed(seed, round_index, "weights"))
        self.network = fresh
        self._num_outputs = None

    def renewable(self, policy: str) -> bool:
        return False  # every job starts from its own copy of the object

    def resume_state(self, policy: str, round_index: int) -> dict[str, list[np.ndarray]] | None:
        """Under ``reset="warm"``: the trained object, pickled into one uint8 array (the
        checkpoint stores arrays only); None otherwise (a fresh copy is made every round)."""
        if policy != "warm" or round_index < 1:
            return None
        try:
            blob = pickle.dumps(self.network, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - pickle raises many types
            raise ValueError(
                f"A resumable warm run stores the trained {self._object_name()} with pickle, which "
                f"fails ({type(exc).__name__}: {exc}); make it picklable, use reset='reinit', or "
                "run without resume."
            ) from None
        return {"pickle": [np.frombuffer(blob, dtype=np.uint8)]}

    def restore_resume_state(self, state: Mapping[str, list[np.ndarray]]) -> None:
        """Load what ``resume_state`` returned."""
        if "pickle" not in state:
            raise ValueError(
                f"This model state holds {sorted(state)}, not the pickled object a wrapper of a "
                f"{self._object_name()} writes; it was saved by a Keras wrapper: start afresh."
            )
        self.network = pickle.loads(np.asarray(state["pickle"][0], dtype=np.uint8).tobytes())
        self._num_outputs = None

    # ------------------------------------------------------------------ training
    def fit(self, x: Any, y: Any, params: dict[str, Any], seed: int, round_index: int, **_: Any):
        """Call the object's ``fit(x, y, **params)`` with the ``fit`` config and ``kwargs``
        (explicit ones win), keeping only the keywords its signature accepts. Returns an
        object with a ``history`` dict (the object's own where its ``fit`` returns one)."""
        fit = getattr(self.network, "fit", None)
        if not callable(fit):  # a missing capability, not a wrong argument type: ValueError
            raise ValueError(  # noqa: TRY004
                f"The wrapped {self._object_name()} has no fit(x, y) method, so it cannot be trained "
                "on the labelled set; give it one, or wrap a Keras model."
            )
        accepted = fit_keywords(fit)
        if accepted is not None:
            dropped = sorted(set(params) - accepted)
            if dropped:
                log.debug("%s.fit takes no %s; not passed.", self._object_name(), ", ".join(dropped))
            params = {k: v for k, v in params.items() if k in accepted}
        try:
            result = fit(x, y, **params)
        except ValueError as exc:
            seen = class_labels(np.asarray(y))
            if seen is None or len(np.unique(seen)) > 1:
                raise
            raise ValueError(
                f"The labelled set holds one class only ({int(seen[0])}), which the wrapped {self._object_name()} "
                f"cannot be fit on ({exc}); label more points at the start (loop.init_size) or draw them "
                "class-balanced (loop.init_strategy=balanced)."
            ) from None
        self._num_outputs = None  # the classes seen may have changed
        history = getattr(result, "history", None)
        return SimpleNamespace(history=dict(history) if isinstance(history, Mapping) else {})

    # ------------------------------------------------------------------ prediction
    def num_outputs(self) -> int | None:
        """Output columns of the last prediction (1 = one sigmoid unit); before any, the length
        of a fitted sklearn object's ``classes_``; None while unknown."""
        if self._num_outputs is not None:
            return self._num_outputs
        classes = getattr(self.network, "classes_", None)
        return None if classes is None else len(classes)

    def probe_num_outputs(self, inputs: Any) -> int | None:
        """``num_outputs`` after predicting ``inputs`` if still unknown; None if the object cannot
        predict yet (e.g. an unfitted sklearn estimator). Used by the loop's label check."""
        if self.num_outputs() is None:
            try:
                self._probabilities(inputs, self._predict_fn(False), len(inputs))
            except Exception:  # noqa: BLE001 - any failure only means "not known yet"
                return None
        return self.num_outputs()

    def _predict_fn(self, stochastic: bool) -> tuple[str, Callable[[Any], Any]]:
        obj = self.network
        if stochastic and accepts_training(obj):
            return "__call__(training=True)", lambda x: obj(x, training=True)
        for name in ("predict_proba", "predict"):
            method = getattr(obj, name, None)
            if callable(method):
                return name, method
        if callable(obj):
            if accepts_training(obj):
                return "__call__(training=False)", lambda x: obj(x, training=False)
            return "__call__", obj
        raise ValueError(
            f"The wrapped {self._object_name()} cannot predict: give it predict_proba(x), predict(x) "
            "or __call__(x) returning class probabilities of shape (N, C)."
        )

    def _probabilities(self, x: Any, method: tuple[str, Callable[[Any], Any]], rows: int) -> np.ndarray:
        name, fn = method
        out = np.asarray(fn(x))
        if name == "predict" and out.ndim == 1 and out.shape[0] == rows:
            out = self._one_hot(out)  # a classifier without probabilities: its labels as certainties
        if out.ndim != 2 or out.shape[0] != rows:
            raise ValueError(
                f"{self._object_name()}.{name} returned an array of shape {out.shape} for {rows} "
                "inputs; the wrapper needs class probabilities of shape (N, C), e.g. from predict_proba."
            )
        if out.dtype.kind != "f":
            out = out.astype(np.float64)
        out = self._aligned(out)
        self._num_outputs = int(out.shape[1])
        return out

    def _known_classes(self) -> np.ndarray | None:
        """The object's class labels as integer ids (sklearn's ``classes_``), or None."""
        classes = getattr(self.network, "classes_", None)
        return None if classes is None else class_labels(np.asarray(classes))

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        """Predicted labels as one-hot rows over the object's classes (its ``classes_``, else
        the labels themselves as class ids)."""
        classes = self._known_classes()
        if classes is None:
            ids = labels.astype(np.int64)
            # At least two columns: one would read as a single sigmoid unit.
            width = max(2, int(self.class_count or 0), int(ids.max(initial=-1)) + 1)
            return np.eye(width)[ids]
        return (labels.astype(np.int64)[:, None] == classes[None, :]).astype(np.float64)

    def _aligned(self, probs: np.ndarray) -> np.ndarray:
        """Columns laid out by class id over all the dataset's classes: an object fitted on a
        labelled set that lacks a class has a column per class it saw (``classes_``), so its
        column j is class ``classes_[j]``; a class it never saw gets probability 0."""
        classes = self._known_classes()
        total = self.class_count
        if classes is None or probs.shape[1] != len(classes):
            return probs
        total = max(int(total or 0), int(classes.max(initial=-1)) + 1)
        if len(classes) == total and np.array_equal(classes, np.arange(total)):
            return probs
        full = np.zeros((len(probs), total), dtype=probs.dtype)
        full[:, classes] = probs
        return full

    def decision_values(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
        """The object's ``decision_function``: ``(N,)`` for a binary classifier, ``(N, C)``
        (one value per class, larger = more that class) for several."""
        decision = getattr(self.network, "decision_function", None)
        if not callable(decision):
            raise ValueError(f"The wrapped {self._object_name()} has no decision_function, so it gives no "
                             "decision values; score it with its predictive samples.")
        parts = [np.asarray(decision(chunk), dtype=np.float64) for _, _, chunk in self._chunks(inputs, batch_size)]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0,))

    def _chunks(self, inputs: Any, batch_size: int | None) -> Iterator[tuple[int, int, Any]]:
        optional(WHOLE_AT_LEAST_1).check("batch_size", batch_size)
        size = int(batch_size or DEFAULT_ROWS)
        n = len(inputs)
        for start in range(0, n, size):
            stop = min(n, start + size)
            yield start, stop, inputs[start:stop]

    def sample_chunks(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool):
        """Yield ``(start, stop, probs)`` with probs ``(stop - start, T, C)``: T calls of the
        object per chunk when ``stochastic``, one call repeated T times otherwise."""
        sample_size = int(sample_size)
        WHOLE_AT_LEAST_1.check("sample_size", sample_size)
        method = self._predict_fn(stochastic)
        for start, stop, chunk in self._chunks(inputs, batch_size):
            rows = stop - start
            if stochastic:
                probs = np.stack([self._probabilities(chunk, method, rows) for _ in range(sample_size)], axis=1)
            else:
                probs = np.repeat(self._probabilities(chunk, method, rows)[:, None, :], sample_size, axis=1)
            yield start, stop, class_probabilities(probs)

    def predictive_samples(self, inputs: Any, sample_size: int, batch_size: int | None,
                           stochastic: bool) -> np.ndarray:
        """Class probabilities ``(N, T, C)`` (see ``sample_chunks``)."""
        parts = [probs for _, _, probs in self.sample_chunks(inputs, sample_size, batch_size, stochastic)]
        if parts:
            return np.concatenate(parts, axis=0)
        width = self.num_outputs() or 0
        return np.zeros((0, int(sample_size), 2 if width == 1 else width))

    def predict(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool) -> np.ndarray:
        """Mean class probabilities ``(N, C)`` over ``sample_size`` samples (one call if deterministic)."""
        WHOLE_AT_LEAST_1.check("sample_size", sample_size)
        if not stochastic:
            sample_size = 1
        return self.predictive_samples(inputs, sample_size, batch_size, stochastic).mean(axis=1)

    def forward(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        """A plain ``Model``'s call: the class probabilities ``(N, C)``."""
        sample_size = int(kwargs.pop("sample_size", 1))
        return self.predict(inputs, sample_size, kwargs.pop("batch_size", None), False)

    def consistent_samples(self, inputs: Any, sample_size: int, seed: int, batch_size: int | None,
                           stochastic: bool) -> np.ndarray:
        """Jointly consistent samples ``(N, T, C)`` from the object's own
        ``consistent_samples(x, sample_size, seed)`` (called per chunk: it must give sample t
        the same parameter draw for every input of a seed); a deterministic wrapper without it
        repeats its prediction T times."""
        sample_size = int(sample_size)
        WHOLE_AT_LEAST_1.check("sample_size", sample_size)
        own = getattr(self.network, "consistent_samples", None)
        if not callable(own):
            if not stochastic:
                return self.predictive_samples(inputs, sample_size, batch_size, False)
            raise ValueError(
                f"BatchBALD and EPIG need consistent samples, which the wrapped {self._object_name()} "
                "does not give: add a method consistent_samples(x, sample_size, seed) returning "
                "(N, T, C) probabilities where sample t is one parameter draw for every input."
            )
        parts = []
        for start, stop, chunk in self._chunks(inputs, batch_size):
            out = np.asarray(own(chunk, sample_size, int(seed)))
            if out.ndim != 3 or out.shape[:2] != (stop - start, sample_size):
                raise ValueError(
                    f"{self._object_name()}.consistent_samples returned shape {out.shape} for "
                    f"{stop - start} inputs and {sample_size} samples; it must return (N, T, C)."
                )
            self._num_outputs = int(out.shape[2])
            parts.append(class_probabilities(out))
        if parts:
            return np.concatenate(parts, axis=0)
        return np.zeros((0, sample_size, 0))

    def reduced_score_chunks(self, *args: Any, **kwargs: Any):
        raise ValueError(f"The wrapped {self._object_name()} has no compiled sampler to reduce scores in; "
                         "score its predictive samples instead.")

    consistent_score_chunks = reduced_score_chunks

    def embeddings(self, inputs: Any, batch_size: int | None, return_probs: bool, layer_name: str | None = None):
        """The object's own ``embeddings(x)`` as ``(N, D)``; with ``return_probs`` also its
        deterministic class probabilities ``(N, C)`` (one sigmoid unit gives ``[1 - p, p]``)."""
        embed = getattr(self.network, "embeddings", None)
        if not callable(embed):
            # A model without a representation of its own (an SVM, a forest) is embedded by its
            # input features, the space classical Core-set works in.
            def embed(chunk):
                return np.asarray(chunk, dtype=np.float64)
        features, probs = [], []
        method = self._predict_fn(False) if return_probs else None
        for start, stop, chunk in self._chunks(inputs, batch_size):
            part = np.asarray(embed(chunk))
            if part.ndim < 1 or part.shape[0] != stop - start:
                raise ValueError(
                    f"{self._object_name()}.embeddings returned shape {part.shape} for {stop - start} "
                    "inputs; it must return one row of features per input."
                )
            features.append(part.reshape(stop - start, -1))
            if method is not None:
                probs.append(class_probabilities(self._probabilities(chunk, method, stop - start)))
        embedded = np.concatenate(features, axis=0) if features else np.zeros((0, 0))
        if not return_probs:
            return embedded
        return embedded, (np.concatenate(probs, axis=0) if probs else np.zeros((0, 0)))

    def disable_batch_norm(self) -> None:
        """Nothing to freeze: the object's layers, if any, are its own business."""

    # ------------------------------------------------------------------ weights on disk
    @staticmethod
    def weights_file(directory: str) -> str:
        return os.path.join(directory, "model.pkl")

    def save_weights(self, directory: str) -> str:
        """Pickle the object to ``<directory>/model.pkl`` (temp file, then rename)."""
        path = self.weights_file(directory)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        atomic_write_with(path, lambda handle: pickle.dump(self.network, handle, protocol=pickle.HIGHEST_PROTOCOL))
        return path

    def load_weights(self, directory: str) -> None:
        with open(self.weights_file(directory), "rb") as handle:
            self.network = pickle.load(handle)
        self._num_outputs = None

    def has_save_state(self, directory: str) -> bool:
        return os.path.exists(self.weights_file(directory))
