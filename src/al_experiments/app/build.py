"""Config -> objects: dataset, network, Bayesian wrapper, query function, loop.

Every component named by a ``_target_`` is created with ``hydra.utils.instantiate``; the rest
(splits, scaling, the ``Config`` sections) is plain code. Problems a user can fix become
``ConfigError``/``DataError`` with one sentence, raised before any tracking starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from al_experiments.acquisition import AcquisitionFunction, UnknownQueryError
from al_experiments.app.errors import ConfigError, DataError
from al_experiments.app.reuse import LAST_MODEL, architecture_key
from al_experiments.app.schema import InitStrategy, LabelNoise, Monitor, Samples, Scaling
from al_experiments.config import Config
from al_experiments.dataset import Dataset
from al_experiments.data import DatasetFileError, RawData, scenarios
from al_experiments.data.task import (
    SPLITS,
    Task,
    TaskFileError,
    noise_generator,
    source_inputs,
    split_generator,
)
from al_experiments.loop import ActiveLearningLoop
from al_experiments.resume.identity import config_hash
from al_experiments.utils.seeding import seed_everything
from al_experiments.utils.quiet_tensorflow import import_tensorflow
from al_experiments.wrapper.interface import as_active_model


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
    pool_classes: str = ""  # "label:count ..." of the pool the oracle labels (scenarios included)
    flipped_labels: int = 0  # pool points the oracle labels wrongly (dataset.label_noise)
    task_hash: str = ""  # Task.digest() once the initial set is known: equal hashes, identical tasks


@dataclass
class Job:
    """Everything one job runs: the loop and the parts it was built from."""

    dataset: Any
    data_info: DataInfo
    task: Task  # the splits and initial set as rows of the data, saved beside the job's results
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


def _ood_interest(data_cfg: DictConfig, labels: np.ndarray) -> list[int] | None:
    """The classes of interest: ``test_classes``, or every class but ``ood_classes``; None: all."""
    if data_cfg.test_classes is not None:
        return [int(c) for c in data_cfg.test_classes]
    if data_cfg.ood_classes:
        ood = {int(c) for c in data_cfg.ood_classes}
        interest = [int(c) for c in np.unique(labels) if int(c) not in ood]
        if len(interest) < 2 or len(interest) == len(np.unique(labels)):
            raise ConfigError(f"dataset.ood_classes={sorted(ood)} must name some, but not all but one, of the "
                              f"classes of dataset={data_cfg.name} ({', '.join(map(str, np.unique(labels)))}).")
        return interest
    return None


def make_task(data_cfg: DictConfig, raw: RawData, split_seed: int) -> Task:
    """Split the source and apply the dataset's scenario options, on row numbers: which rows each
    split holds and with which labels. Test and validation keep the data's own distribution
    (but for the classes an option takes out of it)."""
    n_train = len(raw.y)
    test = (n_train + np.arange(len(raw.y_test)), raw.y_test) if raw.has_test_split() else None
    try:
        split = Dataset(
            np.arange(n_train), raw.y, test=test,
            test_size=None if test is not None else _size(data_cfg.test_size),
            val_size=_size(data_cfg.val_size), seed=split_seed,
            train_size=data_cfg.train_subset,  # a stratified subset of what validation and test leave
        )
    except ValueError as exc:
        raise DataError(f"dataset={data_cfg.name} cannot be split as configured: {exc}") from None
    (pool, y_pool), (test_rows, y_test), (val, y_val) = (split.get_train_split(), split.get_test_split(),
                                                         split.get_eval_split())
    y_pool = np.asarray(y_pool)
    interest = _ood_interest(data_cfg, y_pool)
    if interest is not None:  # every other class is one "other" class, absent from the test set
        y_pool = scenarios.relabel_other(y_pool, interest)
        if y_test is not None:
            y_test = scenarios.relabel_other(y_test, interest)
            test_rows, y_test = test_rows[y_test < len(interest)], y_test[y_test < len(interest)]
        if y_val is not None:
            y_val = scenarios.relabel_other(y_val, interest)
            if data_cfg.ood_classes:  # validation stands for the test distribution
                val, y_val = val[y_val < len(interest)], y_val[y_val < len(interest)]
    if data_cfg.ood_fraction is not None:
        pool, y_pool = scenarios.ood_share(pool, y_pool, len(interest), float(data_cfg.ood_fraction),
                                           split_generator(split_seed, 0x00D))
    if data_cfg.minority_classes:
        pool, y_pool = scenarios.thin_classes(pool, y_pool, [int(c) for c in data_cfg.minority_classes],
                                              float(data_cfg.minority_keep), split_generator(split_seed, 0x7A1))
    pool, y_pool = scenarios.long_tail(pool, y_pool, float(data_cfg.imbalance_ratio),
                                       split_generator(split_seed, 0x7A11))
    target = None
    if data_cfg.target_size:
        if y_test is None:
            raise ConfigError(f"dataset.target_size={data_cfg.target_size} sets aside part of the test split, "
                              f"but dataset={data_cfg.name} has none: set dataset.test_size.")
        size = _count_of(data_cfg.target_size, len(y_test))
        if not 0 < size < len(y_test):
            raise ConfigError(f"dataset.target_size={data_cfg.target_size} must leave test points: the test split "
                              f"has {len(y_test)}.")
        (test_rows, y_test), target = scenarios.split_off(test_rows, y_test, size,
                                                          split_generator(split_seed, 0x7A6))
    flipped = None
    if data_cfg.label_noise:
        classes = int(max(y_pool.max(), -1 if y_test is None else np.max(y_test)) + 1)
        kind = LabelNoise(data_cfg.label_noise_kind).value
        y_pool, flipped = scenarios.flip_labels(y_pool, float(data_cfg.label_noise), kind, classes,
                                                split_generator(split_seed, 0xF11))
    pool, y_pool, copy_of = scenarios.repeat_pool(pool, y_pool, data_cfg.repeat, 0.0, None)
    if flipped is not None and copy_of is not None:
        flipped = flipped[copy_of]
    return Task(
        source_hash=raw.content_hash(), split_seed=int(split_seed), pool=pool, pool_labels=np.asarray(y_pool),
        test=test_rows, test_labels=None if y_test is None else np.asarray(y_test),
        val=val, val_labels=None if y_val is None else np.asarray(y_val),
        target=None if target is None else target[0], target_labels=None if target is None else target[1],
        copy_of=copy_of, repeat_noise=float(data_cfg.repeat_noise),
        flipped=None if flipped is None else np.flatnonzero(flipped),
    )


def _count_of(value: float, total: int) -> int:
    """A size option (read as ``_size`` reads it) as a count of ``total`` points."""
    size = _size(value)
    return 0 if size is None else (int(round(size * total)) if isinstance(size, float) else size)


def task_file(cfg: DictConfig) -> str:
    """The name a job's task file has in a tasks folder: ``<dataset>-seed<seed>-<key>.npz``, the
    key a hash of every setting that shapes the task (the dataset's options but its path and task
    folder, the seeds, the initial set's size and strategy)."""
    data = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True).items()
            if k not in ("path", "task_dir", "loader")}
    key = config_hash({"dataset": data, "seed": int(cfg.seed), "init_size": int(cfg.loop.init_size),
                       "init_strategy": InitStrategy(cfg.loop.init_strategy).value})
    return f"{cfg.dataset.name}-seed{int(cfg.seed)}-{key[:12]}.npz"


def build_dataset(cfg: DictConfig) -> tuple[Any, DataInfo, Task]:
    """Load the data, make (or read from ``dataset.task_dir``) the job's task, scale with the
    pool's statistics; the ``Dataset`` holding it (the initial set is drawn by the loop, unless
    the task names it)."""
    data_cfg = cfg.dataset
    try:
        raw: RawData = instantiate(data_cfg.loader)
    except DatasetFileError as exc:
        raise DataError(str(exc)) from None
    split_seed = cfg.seed if data_cfg.split_seed is None else data_cfg.split_seed
    try:  # the loaded arrays as a Dataset checks them (finite, one target per input, one shape),
        # before the task is drawn on their row numbers only
        Dataset(raw.x, raw.y, test=(raw.x_test, raw.y_test) if raw.has_test_split() else None)
    except ValueError as exc:
        raise DataError(f"dataset={data_cfg.name} cannot be split as configured: {exc}") from None
    if data_cfg.task_dir:
        try:
            task = Task.load(os.path.join(os.path.expanduser(data_cfg.task_dir), task_file(cfg)), raw.content_hash())
        except TaskFileError as exc:
            raise DataError(str(exc)) from None
    else:
        task = make_task(data_cfg, raw, split_seed)
    inputs = source_inputs(raw.x, raw.x_test)
    (x_pool, y_pool), test, val, target = (task.split(name, inputs) or (None, None) for name in SPLITS)
    x_pool, x_test, x_val, x_target = _scale(data_cfg.scaling, np.asarray(x_pool), test[0], val[0], target[0])
    if task.repeat_noise > 0:  # each copy its own noise, in scaled input units
        noise = noise_generator(task.split_seed).normal(0.0, task.repeat_noise, size=x_pool.shape)
        x_pool = (x_pool + noise).astype(x_pool.dtype, copy=False)

    init_size, step_size = int(cfg.loop.init_size), int(cfg.loop.step_size)
    if init_size > len(x_pool):
        raise ConfigError(
            f"loop.init_size={init_size} is larger than the training pool of dataset="
            f"{data_cfg.name} ({len(x_pool)} points); lower loop.init_size."
        )
    if init_size + step_size > len(x_pool):
        raise ConfigError(
            f"The training pool of dataset={data_cfg.name} has {len(x_pool)} points, fewer than "
            f"loop.init_size={init_size} plus one round of loop.step_size={step_size}; lower them "
            "or use more data."
        )
    dataset = Dataset(
        x_pool, y_pool,
        test=None if x_test is None else (x_test, test[1]),
        val=None if x_val is None else (x_val, val[1]),
        init_size=init_size, init_indices=task.init, copy_of=task.copy_of,
        init_strategy=InitStrategy(cfg.loop.init_strategy).value,
        target=None if x_target is None else (x_target, target[1]),
    )
    train_n, test_n, val_n = dataset.get_split_ratio()
    labels, counts = np.unique(np.asarray(y_pool), return_counts=True)
    info = DataInfo(
        name=data_cfg.name, path=raw.path, train_size=train_n, test_size=test_n, val_size=val_n,
        num_classes=int(dataset.num_classes() or 2), input_shape=tuple(np.shape(x_pool)[1:]),
        content_hash=raw.content_hash(),
        pool_classes=" ".join(f"{int(c)}:{int(n)}" for c, n in zip(labels, counts)),
        flipped_labels=0 if task.flipped is None else len(task.flipped),
    )
    return dataset, info, task


# Logged every round beside accuracy, for pools and test sets whose classes are not balanced.
CLASS_METRICS = ("balanced_accuracy", "macro_f1")


def build_network(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The Keras network of ``model.network`` for this data's shape and classes."""
    try:
        return instantiate(cfg.model.network, input_shape=list(input_shape), num_classes=num_classes)
    except ValueError as exc:
        raise ConfigError(f"model={cfg.model.name} does not fit dataset={cfg.dataset.name}: {exc}") from None


def model_settings(cfg: DictConfig) -> Any:
    """The wrapper's ``Config``: training, query and evaluation settings of the job."""
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
    model_cfg = cfg.model
    if not uses_keras(cfg):
        wrapper = instantiate(model_cfg.wrapper, build_estimator(cfg), model_settings(cfg))
        wrapper.compile(loss=model_cfg.loss, metrics=["accuracy", *CLASS_METRICS])
        return wrapper
    import keras  # TensorFlow-heavy: loaded for a network only, once the data and query are checked

    network = build_network(cfg, input_shape, num_classes)
    try:
        wrapper = instantiate(model_cfg.wrapper, network, model_settings(cfg))
    except ValueError as exc:
        raise ConfigError(f"model.wrapper is invalid: {exc}") from None
    wrapper.compile(
        optimizer=instantiate(model_cfg.optimizer),
        loss=model_cfg.loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(), *CLASS_METRICS],
    )
    return wrapper


def build_query(cfg: DictConfig) -> Any:
    """The ``AcquisitionFunction`` of ``query``; its sample count T lives in the model's Config."""
    query = cfg.query
    try:
        return AcquisitionFunction(query.name, batch_size=query.batch_size, pool_subset=query.pool_subset,
                                   options=dict(query.options), samples=Samples(query.samples).value)
    except UnknownQueryError as exc:
        raise ConfigError(f"query.name={query.name!r} is not a query function: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"query.options: {exc}") from None


def uses_keras(cfg: DictConfig) -> bool:
    """Whether the job's model is a Keras network (and so needs TensorFlow) rather than a
    classical estimator: the schema allows exactly one of ``model.network`` and ``model.estimator``."""
    return cfg.model.estimator is None


def build(cfg: DictConfig) -> Job:
    """All objects of one job, seeded by ``cfg.seed`` (the network's initial weights included)."""
    # The data and the query are checked first: a bad file is refused in a second, not after
    # TensorFlow's start-up (which reads neither).
    dataset, info, task = build_dataset(cfg)
    query = build_query(cfg)
    # A classical model (model.estimator) never loads TensorFlow: its jobs start in a second.
    keras_job = uses_keras(cfg)
    if keras_job:
        import_tensorflow()  # before Keras, so TF's log level is set before it loads
        import keras  # TensorFlow-heavy: after the checks above, so a bad config is refused first

    # A multirun on the basic launcher runs its jobs in one process: the previous job's network
    # is taken over when this job would build the same one; otherwise its Keras state is
    # dropped, and the seed is set before the new network takes its seeds and initial weights.
    key = architecture_key(cfg, info.input_shape, info.num_classes)
    model = LAST_MODEL.take(key)
    if model is None:
        if keras_job:
            keras.backend.clear_session()
        seed_everything(cfg.seed, tensorflow=keras_job)
        model = build_model(cfg, info.input_shape, info.num_classes)
    else:
        seed_everything(cfg.seed, tensorflow=keras_job)
        as_active_model(model).renew(model_settings(cfg))
    LAST_MODEL.keep(key, model)
    try:
        loop = ActiveLearningLoop(
            model, dataset, query, step_size=cfg.loop.step_size, max_rounds=cfg.loop.max_rounds, seed=cfg.seed
        )
    except ValueError as exc:  # labels the network cannot output
        raise DataError(f"dataset={cfg.dataset.name} does not fit model={cfg.model.name}: {exc}") from None
    if task.init is None:  # drawn by the loop: now part of the task
        task.init = np.asarray(loop.initial_indices, dtype=np.int64)
    info.task_hash = task.digest()
    return Job(dataset=dataset, data_info=info, task=task, model=model, query=query, loop=loop)
