"""``RoundView``: what a strategy may ask about one acquisition round.

The view holds the round's candidates (unlabelled pool indices, after any ``pool_subset``), the
labelled set, the sample count and a seeded generator. Everything that costs a model call is
computed on first request and kept for the round, so strategies that share a building block
(BALD scores, joint samples, embeddings) pay for it once; ``stacked_features`` alone hands its
caller a new array each time, for a strategy that scales a large pool's features in place.

The model supplies building blocks only (see ``wrapper.Model``): predictive samples
(independent or consistent), scores reduced inside its compiled sampler, embeddings. Choosing
which block answers a request is done here, on the acquisition side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_experiments.validation import WHOLE_AT_LEAST_1, Options
from al_experiments.wrapper import interface as model_interface

from .batch.epig import TARGET_SOURCES
from .batch.features import flat_features
from .scores import DECISION_SCORES
from .registry import get_query
from .strategy import QueryStrategy

__all__ = ["RoundView", "IndexedInputs", "point_scores", "TARGET_SOURCES", "SAMPLE_KINDS", "check_samples"]

# Which predictive samples per-point scores are computed on. ``consistent``: sample t is one
# parameter draw (one set of dropout masks) for every candidate of the round, so copies of a
# point get tied scores and top-k takes them together (the BatchBALD authors' BALD);
# ``independent``: a fresh draw per point and sample, whose noise splits such ties (a mildly
# stochastic top-k). Both have the same distribution per point.
SAMPLE_KINDS = ("independent", "consistent")


def check_samples(samples: str) -> str:
    """``samples`` if it names a kind of predictive samples, else one sentence on the fix."""
    if samples not in SAMPLE_KINDS:
        raise ValueError(
            f"samples={samples!r} is not a kind of predictive samples; use one of "
            f"{', '.join(SAMPLE_KINDS)}."
        )
    return samples


class IndexedInputs:
    """A lazy view ``inputs[indices]``: slicing gathers only the requested chunk.

    Scoring a pool chunk by chunk through this view never copies the whole unlabelled pool.
    """

    def __init__(self, inputs: Any, indices: np.ndarray) -> None:
        self._inputs = inputs
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, item: Any) -> Any:
        return self._inputs[self._indices[item]]

    def __array__(self, dtype=None, copy=None):
        array = np.asarray(self._inputs[self._indices])
        return array if dtype is None else array.astype(dtype)

    @property
    def shape(self) -> tuple:
        return (len(self._indices),) + tuple(np.shape(self._inputs)[1:])


def point_scores(model: Any, inputs: Any, strategy: QueryStrategy, sample_size: int = 10,
                 batch_size: int | None = None) -> np.ndarray:
    """Per-point scores of ``strategy`` for ``inputs``, chunk by chunk, from ``model``'s cheapest
    building block: scores reduced inside its compiled sampler where the strategy has an in-graph
    form, else its independent predictive samples scored with numpy."""
    scores = np.empty(len(inputs), dtype=np.float64)
    # Only a model with a compiled sampler reduces scores in it; for any other, building the
    # TensorFlow reduction would be work (and a TensorFlow import) for nothing.
    if model_interface.supports(model, model_interface.REDUCED_SCORES):
        from .graph_scores import graph_reduction  # imports TensorFlow: compiled samplers only

        reduction = graph_reduction(strategy, max(2, model.num_outputs()))  # one sigmoid unit = 2 classes
        if reduction is not None:
            for start, stop, values in model.reduced_score_chunks(inputs, int(sample_size), reduction,
                                                                  batch_size):
                scores[start:stop] = values
            return scores
    if model_interface.declares(model):  # a QueryModel gives its samples chunk by chunk
        for start, stop, probs in model.sample_chunks(inputs, int(sample_size), batch_size):
            scores[start:stop] = strategy.scores(probs)
        return scores
    return strategy.scores(_samples(model, inputs, sample_size, batch_size))


def decision_scores(model: Any, inputs: Any, strategy: QueryStrategy, batch_size: int | None) -> np.ndarray:
    """Scores of a classifier without probabilities, from its ``decision_values``: only the
    strategies a decision function can stand in for (``DECISION_SCORES``)."""
    score = DECISION_SCORES.get(strategy.fn)
    if score is None:
        raise ValueError(
            f"The wrapped {type(model.get_model()).__name__} gives decision values, not probabilities, so it "
            f"cannot be scored by '{strategy.name}': use least_confidence, margin, random or coreset, or a "
            "classifier with predict_proba (e.g. SVC(probability=True))."
        )
    return score(model.decision_values(inputs, batch_size))


def _samples(model: Any, inputs: Any, sample_size: int, batch_size: int | None) -> np.ndarray:
    if model_interface.supports(model, model_interface.INDEPENDENT_SAMPLES):
        return np.asarray(model.predictive_samples(inputs, int(sample_size), batch_size))
    if callable(model):
        return np.asarray(model(np.asarray(inputs), sample_size=int(sample_size)))
    raise ValueError(
        f"The model {model!r} gives no predictive samples: wrap the network in McDropout, "
        "DeepEnsemble or another al_experiments wrapper, or use query=random."
    )


def _own_scorer(model: Any):
    """A tf_al-style ``get_query_fn`` the model (or its class) defines itself, else None."""
    return model.get_query_fn if model_interface.supports(model, model_interface.OWN_SCORER) else None


class RoundView:
    """One round's candidates and, on demand, the model's building blocks for them.

    Args:
        model: The wrapped model (``wrapper.Model`` or a tf_al-style object).
        pool: The ``Pool``.
        candidates: Unlabelled pool indices to choose from.
        rng: The round's generator (seeded from (seed, round)); strategies draw from it.
        sample_size: Predictive samples T per point.
        chunk_size: Points per forward chunk (None: the model chooses).
        dataset: The ``Dataset``, for a validation-split target set.
        scorer: A function ``fn(inputs, **kwargs) -> scores`` that overrides per-point scoring
            (``AcquisitionFunction.set_fn``).
        samples: Which samples per-point scores use (``SAMPLE_KINDS``): ``independent`` draws
            or the round's ``consistent`` ones (shared with ``joint_samples``).
    """

    def __init__(self, model: Any, pool: Any, candidates: np.ndarray, rng: np.random.Generator,
                 sample_size: int = 10, chunk_size: int | None = None, dataset: Any = None,
                 scorer: Any = None, score_kwargs: dict[str, Any] | None = None,
                 samples: str = "independent") -> None:
        self.model = model
        self.samples_kind = check_samples(samples)
        self.pool = pool
        self.candidates = np.asarray(candidates, dtype=np.int64)
        self.rng = rng
        self.sample_size = int(sample_size)
        self.chunk_size = chunk_size
        self.dataset = dataset
        self._scorer = scorer
        self._score_kwargs = dict(score_kwargs or {})
        self._cache: dict[Any, Any] = {}
        # The view's own draws (the consistent-sample seed, the target set) come from a child of
        # the round's generator, so they never shift what a strategy draws from ``rng``.
        self._aux = _child(rng)
        self._joint_seed = int(self._aux.integers(0, 2**31 - 1))
        # The pool indices of a target set drawn from the pool (None otherwise): what a check of
        # how often a strategy picks its own targets needs.
        self.target_pool_indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def labelled(self) -> np.ndarray:
        """Labelled pool indices."""
        return self.pool.get_labeled_indices()

    def candidate_inputs(self) -> IndexedInputs:
        return IndexedInputs(self.pool.inputs, self.candidates)

    def labelled_inputs(self) -> IndexedInputs:
        return IndexedInputs(self.pool.inputs, self.labelled)

    # ------------------------------------------------------------------ per-point scores
    def scores(self, strategy: str | QueryStrategy) -> np.ndarray:
        """Per-point scores ``(N,)`` of a score strategy (e.g. ``"bald"``) for the candidates."""
        strategy = get_query(strategy)
        if not isinstance(strategy, QueryStrategy) or not strategy.needs_samples:
            raise ValueError(
                f"view.scores needs a per-point score strategy that uses predictive samples; "
                f"{strategy.name!r} is not one."
            )
        key = ("scores", strategy.name)
        if key not in self._cache:
            self._cache[key] = self._compute_scores(strategy)
        return self._cache[key]

    def _compute_scores(self, strategy: QueryStrategy) -> np.ndarray:
        inputs = self.candidate_inputs()
        if self._scorer is None and model_interface.supports(self.model, model_interface.DECISION_VALUES):
            return decision_scores(self.model, inputs, strategy, self.chunk_size)
        own = self._scorer or _own_scorer(self.model)
        if self.samples_kind == "consistent":
            if own is not None:
                raise ValueError(
                    f"samples='consistent' scores '{strategy.name}' on the round's consistent samples, "
                    "but this model (or set_fn) scores points its own way; use samples='independent'."
                )
            return self.joint_scores(strategy)
        if own is not None:
            fn = own if self._scorer is not None else own(strategy.name)
            if fn is None:
                raise ValueError(
                    f"The model {self.model} cannot score the query function '{strategy.name}'; "
                    "wrap the network in McDropout (or another Bayesian wrapper) or use 'random'."
                )
            kwargs = {"sample_size": self.sample_size, **self._score_kwargs}
            if self.chunk_size is not None:
                kwargs.setdefault("batch_size", self.chunk_size)
            out = np.asarray(fn(inputs, **kwargs), dtype=np.float64).reshape(-1)
            if out.shape != (len(inputs),):
                raise ValueError(
                    f"The query function '{strategy.name}' returned {out.size} scores for "
                    f"{len(inputs)} pool points; it must return one score per point."
                )
            return out
        return point_scores(self.model, inputs, strategy, self.sample_size, self.chunk_size)

    def joint_scores(self, strategy: str | QueryStrategy) -> np.ndarray:
        """Per-point scores ``(N,)`` on the round's consistent samples (the draws of
        ``joint_samples``), whatever ``samples`` says: what a joint strategy culls its
        candidates by, so that a kept candidate's samples are its rows of the whole set's."""
        strategy = get_query(strategy)
        key = ("joint_scores", strategy.name)
        if key not in self._cache:
            self._cache[key] = self._consistent_scores(strategy)
        return self._cache[key]

    def _consistent_scores(self, strategy: QueryStrategy) -> np.ndarray:
        """Scores on the round's consistent samples: reduced inside the model's compiled
        consistent sampler where it has one, else from ``joint_samples`` (shared with a joint
        strategy of the same round)."""
        joint = self._cache.get("joint")
        if joint is None and model_interface.supports(self.model, model_interface.REDUCED_SCORES):
            from .graph_scores import graph_reduction  # imports TensorFlow: compiled samplers only

            reduction = graph_reduction(strategy, max(2, self.model.num_outputs()))
            if reduction is not None:
                scores = np.empty(len(self), dtype=np.float64)
                for start, stop, values in self.model.consistent_score_chunks(
                        self.candidate_inputs(), self.sample_size, self._joint_seed, reduction, self.chunk_size):
                    scores[start:stop] = values
                return scores
        return strategy.scores(self.joint_samples())

    # ------------------------------------------------------------------ samples
    def samples(self) -> np.ndarray:
        """Independent predictive samples ``(N, T, C)`` of the candidates (per-point use only)."""
        if "samples" not in self._cache:
            self._cache["samples"] = _samples(self.model, self.candidate_inputs(), self.sample_size,
                                              self.chunk_size)
        return self._cache["samples"]

    def joint_samples(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Consistent samples ``(N, T, C)``: sample t is one parameter draw for every candidate
        (and for ``target_samples``), as BatchBALD's and EPIG's joint terms need.

        ``positions`` (into the candidates) asks for those candidates only, and only they pass
        through the network: the draws depend on the round's seed and the sample index alone, so
        their rows are the rows the whole set's samples would have."""
        if positions is not None and "joint" not in self._cache:
            positions = np.asarray(positions, dtype=np.int64)
            return self._consistent(IndexedInputs(self.pool.inputs, self.candidates[positions]))
        if "joint" not in self._cache:
            self._cache["joint"] = self._consistent(self.candidate_inputs())
        return self._cache["joint"] if positions is None else self._cache["joint"][positions]

    def target_samples(self, size: int = 100, source: str = "pool") -> np.ndarray:
        """Consistent samples ``(M, T, C)`` of a target set, drawn with the same parameter draws
        as ``joint_samples``: ``size`` unlabelled pool points drawn afresh each round
        (``source="pool"``), or up to ``size`` points of the validation split."""
        Options(TARGET_SOURCES).check("target", source)
        WHOLE_AT_LEAST_1.check("target_size", size)
        key = ("target", int(size), source)
        if key not in self._cache:
            self._cache[key] = self._consistent(self._target_inputs(int(size), source))
        return self._cache[key]

    def _target_inputs(self, size: int, source: str) -> Any:
        if source != "pool":
            split, noun, setting = (("get_eval_split", "a validation split", "dataset.val_size > 0")
                                    if source == "validation" else
                                    ("get_target_split", "a target split", "dataset.target_size > 0"))
            getter = getattr(self.dataset, split, None)
            x_split = None if getter is None else getter()[0]
            if x_split is None or len(x_split) == 0:
                raise ValueError(f"target={source} needs {noun}: set {setting}, or use target=pool.")
            if len(x_split) <= size:
                return x_split
            return np.asarray(x_split)[np.sort(self._aux.choice(len(x_split), size, replace=False))]
        unlabelled = self.pool.get_unlabeled_indices()
        if len(unlabelled) > size:
            unlabelled = np.sort(self._aux.choice(unlabelled, size, replace=False))
        self.target_pool_indices = unlabelled
        return IndexedInputs(self.pool.inputs, unlabelled)

    def _consistent(self, inputs: Any) -> np.ndarray:
        # A QueryModel that does not support them says why when asked; any other object is told here.
        if not model_interface.supports(self.model, model_interface.CONSISTENT_SAMPLES) and \
                not model_interface.declares(self.model):
            raise ValueError(
                f"This strategy needs consistent joint samples, which {type(self.model).__name__} "
                "does not give: use an al_experiments wrapper (McDropout, DeepEnsemble)."
            )
        return np.asarray(self.model.consistent_samples(inputs, self.sample_size, self._joint_seed, self.chunk_size))

    # ------------------------------------------------------------------ embeddings
    def embeddings(self) -> np.ndarray:
        """Deterministic embeddings ``(N, D)`` of the candidates."""
        return self._embedded("candidates")[0]

    def predictive(self) -> np.ndarray:
        """Deterministic class probabilities ``(N, C)`` of the candidates (same pass as
        ``embeddings``)."""
        return self._embedded("candidates")[1]

    def labelled_embeddings(self) -> np.ndarray:
        """Deterministic embeddings ``(L, D)`` of the labelled points."""
        return self._embedded("labelled")[0]

    def _embedded(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        key = ("embedded", which)
        if key not in self._cache:
            self._require_embeddings()
            inputs = self.candidate_inputs() if which == "candidates" else self.labelled_inputs()
            embeddings, probs = self.model.embeddings(inputs, self.chunk_size, return_probs=True)
            self._cache[key] = (np.asarray(embeddings), np.asarray(probs))
        return self._cache[key]

    def _require_embeddings(self) -> None:
        if not model_interface.supports(self.model, model_interface.EMBEDDINGS) and \
                not model_interface.declares(self.model):
            raise ValueError(
                f"This strategy needs embeddings, which {type(self.model).__name__} does not "
                "give: use an al_experiments wrapper (Model, McDropout, DeepEnsemble)."
            )

    def stacked_features(self, features: str, positions: np.ndarray | None = None) -> np.ndarray:
        """The candidates' feature rows (those at ``positions`` among them, or all) followed by
        the labelled points', in one new array that the caller owns: not kept for the round, so
        a strategy may scale it in place and a large pool's features exist once. ``features``:
        ``embedding`` (the deterministic embeddings, one pass) or ``input`` (flattened inputs)."""
        candidates = self.candidates if positions is None else self.candidates[positions]
        inputs = IndexedInputs(self.pool.inputs, np.concatenate([candidates, self.labelled]))
        if features == "input":
            return flat_features(inputs)
        self._require_embeddings()
        # A model that hands out an array it keeps (or cannot write) gets it copied.
        return np.require(self.model.embeddings(inputs, self.chunk_size), requirements=["W", "O"])


def _child(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator derived from ``rng`` without drawing from its stream."""
    try:
        return rng.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):
        # A bit generator without a seed sequence cannot spawn: draw the child's seed instead
        # (still deterministic, but it advances ``rng``).
        return np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
