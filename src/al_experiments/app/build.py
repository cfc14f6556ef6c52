"""Config -> objects: dataset, network, Bayesian wrapper, query function, loop.

Every component named by a ``_target_`` is created with ``hydra.utils.instantiate``; the rest
(splits, scaling, the ``Config`` sections) is plain code. Problems a user can fix become
``ConfigError``/``DataError`` with one sentence, raised before any tracking starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig

from al_experiments.app.errors import ConfigError, DataError
from al_experiments.app.reuse import LAST_MODEL, architecture_key
from al_experiments.app.schema import InitStrategy, Monitor, Samples, Scaling
from al_experiments.datasets import DatasetFileError, RawData


@dataclass
class DataInfo:
    """What ``.meta.json`` and the MLflow params record about the data of a job."""

    name: str
    path: str
    train_size: int
    test_size: int
    val_size: int
    num_classes: int
    input_shape: tuple[int, ...]
    content_hash: str = ""  # of the loaded arrays (before splitting), see datasets.content_hash


@dataclass
class Job:
    """Everything one job runs: the loop and the parts it was built from."""

    dataset: Any
    data_info: DataInfo
    model: Any
    query: Any
    loop: Any


def instantiate(node: Any, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises what the target itself raised.

    Hydra wraps every error of a ``_target_`` in ``InstantiationException``; the original one
    (a missing file, a shape the network cannot take) is what the user needs to see.
    """
    try:
        return hydra_instantiate(node, *args, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, Exception):
            raise exc.__cause__ from None
        raise


def _size(value: float) -> float | int | None:
    """Config sizes: 0 -> none, a fraction in (0, 1) stays a fraction, else a count."""
    if value == 0:
        return None
    return float(value) if value < 1 else int(value)


def _scale(scaling: Scaling, train: np.ndarray, *others: np.ndarray | None) -> list[np.ndarray | None]:
    """Scale with statistics of the training pool only, so the test split stays unseen."""
    if scaling is Scaling.none:
        return [train, *others]
    if scaling is Scaling.minmax:
        peak = float(np.max(np.abs(train))) or 1.0
        return [x if x is None else (x / peak).astype("float32") for x in (train, *others)]
    axis = 0
    mean, std = train.mean(axis=axis), train.std(axis=axis)
    std = np.where(std > 0, std, 1.0)
    return [x if x is None else ((x - mean) / std).astype("float32") for x in (train, *others)]


def _apply_scenarios(data_cfg: DictConfig, seed: int, train: tuple, test: tuple, val: tuple):
    """The dataset's scenario options, each on the splits it names, each drawn from its own
    generator of ``seed``: ``(train, test, val, target, copy_of)``."""
    from al_experiments.datasets import scenarios

    def rng(purpose: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, purpose]))

    (x_train, y_train), (x_test, y_test), (x_val, y_val) = train, test, val
    if data_cfg.test_classes is not None:  # the classes of interest; every other one is "other"
        classes = [int(c) for c in data_cfg.test_classes]
        y_train = scenarios.relabel_other(y_train, classes)
        y_val = None if y_val is None else scenarios.relabel_other(y_val, classes)
        if y_test is not None:
            y_test = scenarios.relabel_other(y_test, classes)
            x_test, y_test = x_test[y_test < len(classes)], y_test[y_test < len(classes)]
    if data_cfg.minority_classes:
        x_train, y_train = scenarios.thin_classes(x_train, y_train, [int(c) for c in data_cfg.minority_classes],
                                                  float(data_cfg.minority_keep), rng(0x7A1))
    target = None
    if data_cfg.target_size:
        if y_test is None:
            raise ConfigError(f"dataset.target_size={data_cfg.target_size} sets aside part of the test split, "
                              f"but dataset={data_cfg.name} has none: set dataset.test_size.")
        size = _count_of(data_cfg.target_size, len(y_test))
        if not 0 < size < len(y_test):
            raise ConfigError(f"dataset.target_size={data_cfg.target_size} must leave test points: the test split "
                              f"has {len(y_test)}.")
        (x_test, y_test), target = scenarios.split_off(x_test, y_test, size, rng(0x7A6))
    x_train, y_train, copy_of = scenarios.repeat_pool(x_train, y_train, data_cfg.repeat, data_cfg.repeat_noise,
                                                      rng(0x5EED))
    return (x_train, y_train), (x_test, y_test), (x_val, y_val), target, copy_of


def _count_of(value: float, total: int) -> int:
    """A size option (read as ``_size`` reads it) as a count of ``total`` points."""
    size = _size(value)
    return 0 if size is None else (int(round(size * total)) if isinstance(size, float) else size)


def build_dataset(cfg: DictConfig) -> tuple[Any, DataInfo]:
    """Load, split and scale the data; create the ``Dataset`` with the initial labelled set."""
    from al_experiments.dataset import Dataset

    data_cfg = cfg.dataset
    try:
        raw: RawData = instantiate(data_cfg.loader)
    except DatasetFileError as exc:
        raise DataError(str(exc)) from None
    split_seed = cfg.seed if data_cfg.split_seed is None else data_cfg.split_seed
    test = (raw.x_test, raw.y_test) if raw.has_test_split() else None
    try:
        split = Dataset(
            raw.x, raw.y, test=test,
            test_size=None if test is not None else _size(data_cfg.test_size),
            val_size=_size(data_cfg.val_size), seed=split_seed,
            train_size=data_cfg.train_subset,  # a stratified subset of what validation and test leave
        )
    except ValueError as exc:
        raise DataError(f"dataset={data_cfg.name} cannot be split as configured: {exc}") from None
    x_train, y_train = split.get_train_split()
    x_test, y_test = split.get_test_split()
    x_val, y_val = split.get_eval_split()
    x_train, x_test, x_val = _scale(data_cfg.scaling, np.asarray(x_train), x_test, x_val)
    (x_train, y_train), (x_test, y_test), (x_val, y_val), target, copy_of = _apply_scenarios(
        data_cfg, split_seed, (x_train, y_train), (x_test, y_test), (x_val, y_val))

    init_size, step_size = int(cfg.loop.init_size), int(cfg.loop.step_size)
    if init_size > len(x_train):
        raise ConfigError(
            f"loop.init_size={init_size} is larger than the training pool of dataset="
            f"{data_cfg.name} ({len(x_train)} points); lower loop.init_size."
        )
    if init_size + step_size > len(x_train):
        raise ConfigError(
            f"The training pool of dataset={data_cfg.name} has {len(x_train)} points, fewer than "
            f"loop.init_size={init_size} plus one round of loop.step_size={step_size}; lower them "
            "or use more data."
        )
    dataset = Dataset(
        x_train, y_train,
        test=None if x_test is None else (x_test, y_test),
        val=None if x_val is None else (x_val, y_val),
        init_size=init_size, copy_of=copy_of, init_strategy=InitStrategy(cfg.loop.init_strategy).value,
        target=target,
    )
    train_n, test_n, val_n = dataset.get_split_ratio()
    info = DataInfo(
        name=data_cfg.name, path=raw.path, train_size=train_n, test_size=test_n, val_size=val_n,
        num_classes=int(dataset.num_classes() or 2), input_shape=tuple(np.shape(x_train)[1:]),
        content_hash=raw.content_hash(),
    )
    return dataset, info


def build_network(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The Keras network of ``model.network`` for this data's shape and classes."""
    try:
        return instantiate(cfg.model.network, input_shape=list(input_shape), num_classes=num_classes)
    except ValueError as exc:
        raise ConfigError(f"model={cfg.model.name} does not fit dataset={cfg.dataset.name}: {exc}") from None


def model_settings(cfg: DictConfig) -> Any:
    """The wrapper's ``Config``: training, query and evaluation settings of the job."""
    from al_experiments.config import Config

    model_cfg = cfg.model
    return Config(
        fit={"epochs": model_cfg.fit.epochs, "batch_size": model_cfg.fit.batch_size,
             "min_steps": model_cfg.fit.min_steps, "patience": model_cfg.fit.patience,
             "monitor": Monitor(model_cfg.fit.monitor).value, "epoch_samples": model_cfg.fit.epoch_samples},
        query={"sample_size": cfg.query.sample_size},
        eval={"sample_size": model_cfg.eval.sample_size},
    )


def build_estimator(cfg: DictConfig) -> Any:
    """The classical model of ``model.estimator`` (any class named by ``_target_``)."""
    try:
        return instantiate(cfg.model.estimator)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.estimator of model={cfg.model.name} cannot be made: {exc}") from None


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The compiled wrapper (e.g. ``McDropout``) around a fresh network, or the wrapper
    (``Model``) around a classical estimator."""
    import keras

    model_cfg = cfg.model
    if model_cfg.estimator is not None:
        wrapper = instantiate(model_cfg.wrapper, build_estimator(cfg), model_settings(cfg))
        wrapper.compile(loss=model_cfg.loss, metrics=["accuracy"])
        return wrapper
    network = build_network(cfg, input_shape, num_classes)
    try:
        wrapper = instantiate(model_cfg.wrapper, network, model_settings(cfg))
    except ValueError as exc:
        raise ConfigError(f"model.wrapper is invalid: {exc}") from None
    wrapper.compile(
        optimizer=instantiate(model_cfg.optimizer),
        loss=model_cfg.loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return wrapper


def build_query(cfg: DictConfig) -> Any:
    """The ``AcquisitionFunction`` of ``query``; its sample count T lives in the model's Config."""
    from al_experiments.acquisition import AcquisitionFunction, UnknownQueryError

    query = cfg.query
    try:
        return AcquisitionFunction(query.name, batch_size=query.batch_size, pool_subset=query.pool_subset,
                                   options=dict(query.options), samples=Samples(query.samples).value)
    except UnknownQueryError as exc:
        raise ConfigError(f"query.name={query.name!r} is not a query function: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"query.options: {exc}") from None


def build(cfg: DictConfig) -> Job:
    """All objects of one job, seeded by ``cfg.seed`` (the network's initial weights included)."""
    from al_experiments.loop import ActiveLearningLoop
    from al_experiments.utils.seeding import seed_everything
    from al_experiments.utils.tf_import import import_tensorflow
    from al_experiments.wrapper.interface import as_active_model

    # The data and the query are checked first: a bad file is refused in a second, not after
    # TensorFlow's start-up (which reads neither).
    dataset, info = build_dataset(cfg)
    query = build_query(cfg)
    import_tensorflow()  # before Keras, so TF's log level is set before it loads
    import keras

    # A multirun on the basic launcher runs its jobs in one process: the previous job's network
    # is taken over when this job would build the same one; otherwise its Keras state is
    # dropped, and the seed is set before the new network takes its seeds and initial weights.
    key = architecture_key(cfg, info.input_shape, info.num_classes)
    model = LAST_MODEL.take(key)
    if model is None:
        keras.backend.clear_session()
        seed_everything(cfg.seed)
        model = build_model(cfg, info.input_shape, info.num_classes)
    else:
        seed_everything(cfg.seed)
        as_active_model(model).renew(model_settings(cfg))
    LAST_MODEL.keep(key, model)
    try:
        loop = ActiveLearningLoop(
            model, dataset, query, step_size=cfg.loop.step_size, max_rounds=cfg.loop.max_rounds, seed=cfg.seed
        )
    except ValueError as exc:  # labels the network cannot output
        raise DataError(f"dataset={cfg.dataset.name} does not fit model={cfg.model.name}: {exc}") from None
    return Job(dataset=dataset, data_info=info, model=model, query=query, loop=loop)
