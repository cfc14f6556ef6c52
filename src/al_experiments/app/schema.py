"""The typed schema of al-run's config, stored in Hydra's ConfigStore.

``conf/config.yaml`` starts its defaults list with ``base_config`` (``AppConfig``), so every
YAML value is merged into a typed, closed node: a misspelt key or a wrong type fails at compose,
before any work. Parts whose fields depend on the chosen option (the network of a model, the
loader of a dataset) are typed by per-kind schemas in the ``schema/`` groups, which the option
files pull in through their own defaults list (``/schema/network@network: mlp``).

Ranges (``step_size >= 1``, a known query name, ...) cannot be expressed as types; ``validate``
checks them and says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from importlib.resources import files
from typing import Any, Dict, List, Optional

from numbers import Real

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from al_experiments import conf
from al_experiments.acquisition import UnknownQueryError, available_queries, get_query
from al_experiments.acquisition.strategy import check_options
from al_experiments.app.errors import ConfigError
from al_experiments.data.scenarios import IMBALANCE_RATIO, KEEP_FRACTION, LABEL_NOISE_RATE
from al_experiments.validation import (
    FRACTION_OPEN,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    WHOLE_AT_LEAST_0,
    WHOLE_AT_LEAST_1,
    YAML_WORDS,
    AnyOf,
    Constraint,
    Interval,
    WholeCount,
    invalid_message,
    optional,
)
from al_experiments.tracking.mlflow_store import TrackingUnavailable, resolve_tracking_uri


class Scaling(Enum):
    """How inputs are scaled, with statistics of the training pool only."""

    none = "none"
    minmax = "minmax"  # divide by the largest absolute training value (pixels -> [0, 1])
    standard = "standard"  # zero mean, unit variance per feature


class Samples(Enum):
    """Which predictive samples per-point scores use (``acquisition.round.SAMPLE_KINDS``)."""

    independent = "independent"  # a fresh dropout draw per point and sample
    consistent = "consistent"  # one draw per sample for the whole round: copies tie


class LabelNoise(Enum):
    """How the oracle's wrong labels are drawn (``datasets.scenarios.flip_labels``)."""

    symmetric = "symmetric"  # uniformly any other class
    pairwise = "pairwise"  # class c mistaken for c + 1 mod C (class-dependent)


class Monitor(Enum):
    """The validation score early stopping watches."""

    accuracy = "accuracy"  # higher is better (BatchBALD's protocol)
    loss = "loss"  # the mean negative log-likelihood, lower is better (EPIG's protocol)


# ----------------------------------------------------------------------------- dataset
@dataclass
class BundledLoaderConf:
    """A loader of data shipped with a library (scikit-learn's bundles): no arguments."""

    _target_: str = MISSING


@dataclass
class FileLoaderConf:
    """A loader of a file or folder on disk (the option files point ``path`` at ``dataset.path``)."""

    _target_: str = MISSING
    path: Optional[str] = MISSING  # null: the loader says how to get the data


@dataclass
class DatasetConf:
    name: str = MISSING
    # The file or folder of a file-based dataset (``dataset.path=...``); null for bundled data.
    path: Optional[str] = None
    loader: Any = MISSING  # typed by schema/loader/{bundled,file}
    scaling: Scaling = Scaling.none
    # A fraction in (0, 1) or a count >= 1; 0 means none. Ignored where the file has a test split.
    test_size: float = 0.25
    val_size: float = 0.0
    split_seed: Optional[int] = None  # null: the job's seed
    # Repeated data (BatchBALD's Repeated-MNIST): each training point appears ``repeat`` times in
    # the pool, each copy with Gaussian noise of this standard deviation (scaled input units;
    # 0 = exact copies). Test and validation splits are untouched.
    repeat: int = 1
    repeat_noise: float = 0.0
    # A pool that differs from the test distribution (applied to the pool only; validation and
    # test keep the dataset's own distribution): keep a ``minority_keep`` fraction of the pool's
    # points of ``minority_classes`` (EPIG's "unbalanced" MNIST: classes 0-4 at 0.1).
    minority_classes: List[int] = field(default_factory=list)
    minority_keep: float = 1.0
    # Only these classes are of interest: every other class becomes one "other" class, which the
    # test set drops (EPIG's "redundant" MNIST: test_classes=[1, 7]); null: all classes.
    test_classes: Optional[List[int]] = None
    # A target set for EPIG drawn from the test distribution and kept apart from the pool and from
    # evaluation: a count or fraction of the test split set aside (query.options.target=
    # test_distribution); 0: none.
    target_size: float = 0.0
    # Keep a class-stratified random subset of this many training points (after the validation
    # and test splits are taken, before repeating), drawn with split_seed: a CPU-sized pool;
    # null keeps them all.
    train_subset: Optional[int] = None
    # A long-tailed pool: head class / tail class = this ratio, class sizes falling exponentially
    # in label order (class 0 the head); 1: the pool as it is.
    imbalance_ratio: float = 1.0
    # The oracle is wrong on this fraction of the pool (exactly); test and validation labels stay
    # true. symmetric: any other class; pairwise: class c is taken for c + 1 (class-dependent).
    label_noise: float = 0.0
    label_noise_kind: LabelNoise = LabelNoise.symmetric
    # Out-of-distribution points: these classes are not in the test or validation sets; in the
    # pool they are one "other" class (the last label), so a model can learn they do not matter.
    ood_classes: List[int] = field(default_factory=list)
    # The share of the pool they make up (the other side thinned to reach it); null: as the data has it.
    ood_fraction: Optional[float] = None
    # Read each job's splits and initial set from the task files in this folder (as a job writes
    # them into <metrics dir>/tasks), instead of drawing them: the identical task again.
    task_dir: Optional[str] = None


# ----------------------------------------------------------------------------- model
@dataclass
class MlpConf:
    _target_: str = "al_experiments.networks.mlp"
    hidden_units: List[int] = field(default_factory=lambda: [128])
    dropout: float = 0.5
    weight_decay: float = 0.0
    activation: str = "relu"


@dataclass
class CnnConf:
    _target_: str = "al_experiments.networks.cnn"
    filters: int = 32
    kernel_size: int = 3
    pool_size: int = 2
    dense_units: int = 128
    conv_dropout: float = 0.25
    dense_dropout: float = 0.5
    weight_decay: float = 0.0


@dataclass
class BatchBaldCnnConf:
    _target_: str = "al_experiments.networks.batchbald_cnn"
    filters: List[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 5
    dense_units: int = 128
    dropout: float = 0.5


@dataclass
class WrapperConf:
    _target_: str = "al_experiments.wrapper.McDropout"
    name: Optional[str] = None
    reset: str = "reinit"
    # The layer whose output Core-set and BADGE embed with; null: the input of the last Dense layer.
    embedding_layer: Optional[str] = None


@dataclass
class EnsembleWrapperConf(WrapperConf):
    """``DeepEnsemble``: ``members`` independently initialised copies of the network."""

    _target_: str = "al_experiments.wrapper.DeepEnsemble"
    members: int = 5


@dataclass
class OptimizerConf:
    _target_: str = "keras.optimizers.Adam"
    learning_rate: float = 1e-3


@dataclass
class FitConf:
    epochs: int = 20
    batch_size: int = 32
    # At least this many gradient steps per round (more epochs while the labelled set is
    # small); null: exactly ``epochs``. See al_experiments.wrapper.model.epochs_for_steps.
    min_steps: Optional[int] = None
    # Early stopping on the validation split (dataset.val_size): stop after this many epochs
    # without improvement of ``monitor`` and restore the best epoch's weights (``epochs`` is
    # then the most epochs); null: no early stopping.
    patience: Optional[int] = None
    monitor: Monitor = Monitor.accuracy
    # An epoch as this many labelled points drawn with replacement (BatchBALD's 5,056); null:
    # one pass over the labelled set.
    epoch_samples: Optional[int] = None


@dataclass
class EvalConf:
    sample_size: int = 10


@dataclass
class ModelConf:
    name: str = MISSING
    # A Keras network builder (typed by schema/network/*), called with the data's input_shape
    # and num_classes; or null where ``estimator`` gives the model.
    network: Any = None
    # A classical model instead of a network: any estimator named by _target_ with its own
    # parameters (e.g. sklearn.svm.SVC), wrapped as it is (see wrapper/object_backend.py).
    estimator: Any = None
    wrapper: WrapperConf = field(default_factory=WrapperConf)  # or schema/wrapper/ensemble
    optimizer: OptimizerConf = field(default_factory=OptimizerConf)
    loss: Optional[str] = "sparse_categorical_crossentropy"  # null: report accuracy only
    fit: FitConf = field(default_factory=FitConf)
    eval: EvalConf = field(default_factory=EvalConf)


# ----------------------------------------------------------------------------- query, loop, sinks
@dataclass
class QueryConf:
    name: str = MISSING
    sample_size: int = 10
    batch_size: Optional[int] = None
    pool_subset: Optional[int] = None
    # Which samples per-point scores (and power_*) are computed on; logged, and a report column.
    samples: Samples = Samples.independent
    # The strategy's own settings (listed with their defaults in conf/query/<name>.yaml), e.g.
    # query.options.temperature=0.5; see AcquisitionFunction.
    options: Dict[str, Any] = field(default_factory=dict)


class InitStrategy(Enum):
    """How the initial labelled set is drawn (``Dataset.init_strategy``)."""

    balanced = "balanced"  # the same number per class where possible
    random = "random"  # uniformly from the pool: a class may be missing at first
    typiclust = "typiclust"  # TypiClust on the flattened inputs: no label used, a class may be missing
    probcover = "probcover"  # ProbCover on the flattened inputs: no label used, a class may be missing


@dataclass
class LoopConf:
    init_size: int = 20
    init_strategy: InitStrategy = InitStrategy.balanced
    step_size: int = 10
    max_rounds: Optional[int] = 10


@dataclass
class MlflowConf:
    tracking_uri: Optional[str] = None
    experiment_name: str = "al-experiments"
    timeout_s: float = 5.0
    server_wait_s: float = 120.0


@dataclass
class AppConfig:
    seed: int = 0
    dataset: DatasetConf = field(default_factory=DatasetConf)
    model: ModelConf = field(default_factory=ModelConf)
    query: QueryConf = field(default_factory=QueryConf)
    loop: LoopConf = field(default_factory=LoopConf)
    mlflow: MlflowConf = field(default_factory=MlflowConf)
    metrics_dir: Optional[str] = None
    run_name: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    report: bool = False  # at the end of a multirun, al-report of the sweep (see app.callbacks)
    resume: bool = True  # continue an interrupted job, skip a finished one (see al_experiments.resume)
    state_dir: str = ".al-state"  # where jobs keep their checkpoints
    # the XLA programs the jobs of a sweep share across processes (utils.compile_cache); None: none
    compile_cache: Optional[str] = "${state_dir}/compile-cache"


def register_configs() -> None:
    """Store the schemas; idempotent, so tests and the CLI can both call it."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=AppConfig)
    cs.store(group="schema/network", name="mlp", node=MlpConf)
    cs.store(group="schema/network", name="cnn", node=CnnConf)
    cs.store(group="schema/network", name="batchbald_cnn", node=BatchBaldCnnConf)
    cs.store(group="schema/loader", name="bundled", node=BundledLoaderConf)
    cs.store(group="schema/loader", name="file", node=FileLoaderConf)
    cs.store(group="schema/wrapper", name="ensemble", node=EnsembleWrapperConf)


def register_strategy_configs() -> list[str]:
    """A ``query/<name>`` option for every registered strategy without a YAML file of ours:
    those of installed packages (entry-point group ``al_experiments.strategies``, loaded here)
    and any registered before ``al-run`` composes. Returns the names added.

    The option sets ``query.name`` and the strategy's options with their defaults, so
    ``query=<name> query.options.<option>=...`` works as for the built-ins; a ``query/<name>.yaml``
    in the user's config directory takes precedence.
    """
    shipped = files(conf) / "query"
    cs = ConfigStore.instance()
    added = []
    for name in available_queries():
        if (shipped / f"{name}.yaml").is_file():
            continue
        options = {key: value for key, value in get_query(name).options().items() if _plain(value)}
        cs.store(group="query", name=name, node={"name": name, "options": options})
        added.append(name)
    return added


def _plain(value: Any) -> bool:
    """Can a config file hold this default (a scalar or a list of scalars)?"""
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


# ----------------------------------------------------------------------------- value checks
_PROBABILITY_TO_DROP = optional(Interval(Real, 0, 1, closed="left"))
# 0 (none), a fraction of the data, or a count (a float node holds 300 as 300.0).
_SPLIT_SIZE = AnyOf(Interval(Real, 0, 1, closed="left"), WholeCount(1))

# The ranges of config values that types cannot express, declared once: ``validate`` checks each
# (a key whose node is absent, e.g. a network's dropout for a network without one, is skipped).
VALUE_CONSTRAINTS: dict[str, Constraint] = {
    "seed": SEED,
    "loop.step_size": WHOLE_AT_LEAST_1,
    "loop.init_size": WHOLE_AT_LEAST_0,
    "loop.max_rounds": optional(WHOLE_AT_LEAST_0),
    "query.sample_size": WHOLE_AT_LEAST_1,
    "query.batch_size": optional(WHOLE_AT_LEAST_1),
    "query.pool_subset": optional(WHOLE_AT_LEAST_1),
    "model.fit.epochs": WHOLE_AT_LEAST_1,
    "model.fit.batch_size": WHOLE_AT_LEAST_1,
    "model.fit.min_steps": optional(WHOLE_AT_LEAST_1),
    "model.fit.patience": optional(WHOLE_AT_LEAST_1),
    "model.fit.epoch_samples": optional(WHOLE_AT_LEAST_1),
    "model.eval.sample_size": WHOLE_AT_LEAST_1,
    "model.optimizer.learning_rate": POSITIVE,
    "model.network.dropout": _PROBABILITY_TO_DROP,
    "model.network.conv_dropout": _PROBABILITY_TO_DROP,
    "model.network.dense_dropout": _PROBABILITY_TO_DROP,
    "dataset.split_seed": optional(SEED),
    "dataset.test_size": _SPLIT_SIZE,
    "dataset.val_size": _SPLIT_SIZE,
    "dataset.target_size": _SPLIT_SIZE,
    "dataset.train_subset": optional(WHOLE_AT_LEAST_1),
    "dataset.minority_keep": KEEP_FRACTION,
    "dataset.imbalance_ratio": IMBALANCE_RATIO,
    "dataset.label_noise": LABEL_NOISE_RATE,
    "dataset.ood_fraction": optional(FRACTION_OPEN),
    "dataset.repeat": WHOLE_AT_LEAST_1,
    "dataset.repeat_noise": NON_NEGATIVE,  # a standard deviation
    "mlflow.timeout_s": POSITIVE,
    "mlflow.server_wait_s": NON_NEGATIVE,  # 0: do not wait
}
_ABSENT = object()


def validate(cfg: DictConfig) -> None:
    """Check the values types cannot express; raise ``ConfigError`` naming the fix.

    Sizes that depend on the data (``init_size`` against the pool) are checked when the dataset
    is built, since only then is the pool size known; arguments of ``_target_`` classes (e.g.
    ``model.wrapper.reset``) are checked by the classes themselves when built.
    """
    for key, constraint in VALUE_CONSTRAINTS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not constraint.accepts(value):
            raise ConfigError(invalid_message(key, value, constraint, YAML_WORDS))
    query, model, data = cfg.query, cfg.model, cfg.dataset
    try:
        strategy = get_query(query.name)
    except UnknownQueryError as exc:
        raise ConfigError(f"query.name={query.name!r} is not a query function: {exc}") from None
    try:
        check_options(strategy, dict(query.options))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"query.options: {exc}") from None
    prefilter = query.options.get("prefilter")
    if prefilter is not None and prefilter < cfg.loop.step_size:
        raise ConfigError(
            f"query.options.prefilter={prefilter} keeps fewer candidates than a batch of loop.step_size="
            f"{cfg.loop.step_size}: set it to at least the batch size, or null to keep every candidate."
        )
    if query.options.get("target") == "validation" and not data.val_size:
        raise ConfigError(
            "query.options.target=validation needs a validation split: set dataset.val_size "
            "(e.g. 100) or use query.options.target=pool."
        )
    if model.fit.patience is not None and not data.val_size:
        raise ConfigError(
            f"model.fit.patience={model.fit.patience} stops training on the validation split, but there is "
            "none: set dataset.val_size (e.g. 100), or model.fit.patience=null."
        )
    if query.options.get("target") == "test_distribution" and not data.target_size:
        raise ConfigError(
            "query.options.target=test_distribution draws targets from a split of the test distribution: set "
            "dataset.target_size (e.g. 1000), or use query.options.target=pool."
        )
    if data.ood_fraction is not None and not data.ood_classes:
        raise ConfigError("dataset.ood_fraction needs dataset.ood_classes: name the classes that are out of "
                          "distribution, e.g. dataset.ood_classes=[8,9].")
    if data.ood_classes and data.test_classes is not None:
        raise ConfigError("dataset.ood_classes and dataset.test_classes both choose the classes of interest; "
                          "set one of them.")
    if (model.network is None) == (model.estimator is None):
        raise ConfigError(
            f"model={model.name} needs exactly one of model.network (a Keras network builder) and "
            "model.estimator (a classical model such as sklearn.svm.SVC); set one and null the other."
        )
    if cfg.compile_cache is not None and not cfg.compile_cache.strip():
        raise ConfigError("compile_cache is empty; name a folder for the compiled programs, or set "
                          "compile_cache=null to compile them in every process.")
    if not cfg.mlflow.experiment_name.strip():
        raise ConfigError("mlflow.experiment_name is empty; give the MLflow experiment a name.")
    try:  # a credential in the URI, refused before Hydra saves the command line
        resolve_tracking_uri(cfg.mlflow.tracking_uri)
    except TrackingUnavailable as exc:
        raise ConfigError(str(exc)) from None

