"""Every option of every config group composes, validates and builds; the schema rejects
wrong types and impossible values. Uses Hydra's compose API (no job, no tracking)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from al_experiments.app.cli import CONF_DIR
from al_experiments.app.errors import ConfigError, DataError
from al_experiments.app.schema import register_configs, validate

CONF = Path(CONF_DIR)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture(autouse=True)
def hydra_conf():
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        yield
    GlobalHydra.instance().clear()


def test_every_registered_query_has_a_config_file():
    from al_experiments.acquisition import available_queries

    # every strategy has a file of its name; a file of another name is a variant of one strategy
    # (other default options, e.g. batch_bald_culled), which runs and is logged under its name
    assert set(available_queries()) <= set(options("query"))
    variants = set(options("query")) - set(available_queries())
    assert variants == {"batch_bald_culled"}
    for variant in variants:
        assert compose("config", overrides=[f"query={variant}"]).query.name in available_queries()


def test_default_config_is_complete_and_valid():
    cfg = compose("config")
    assert OmegaConf.missing_keys(cfg) == set()
    assert (cfg.dataset.name, cfg.model.name, cfg.query.name) == ("digits", "mc_dropout_mlp", "bald")
    validate(cfg)


@pytest.mark.parametrize("name", options("query"))
def test_query_options_build(name):
    from al_experiments.app.build import build_query

    cfg = compose("config", overrides=[f"query={name}"])
    validate(cfg)
    assert build_query(cfg).get_name() == cfg.query.name
    assert cfg.query.name == name or name.startswith(cfg.query.name + "_")  # a variant names its strategy


@pytest.mark.parametrize("name", options("model"))
def test_model_options_build(name):
    from al_experiments.app.build import build_model

    cfg = compose("config", overrides=[f"model={name}"])
    validate(cfg)
    wrapper = build_model(cfg, (28, 28) if "batchbald" in name else (8, 8), 10)  # two 5x5 convs need room
    assert wrapper.get_model_name() == name
    if cfg.model.estimator is None:
        assert wrapper.num_outputs() == 10
    else:  # a classical estimator learns its classes when it is fitted
        assert type(wrapper.get_model()).__module__.startswith("sklearn.")
        x = np.random.default_rng(0).normal(size=(40, 8, 8))
        wrapper.fit(x.reshape(40, -1), np.arange(40) % 10)
        assert wrapper.predict(x.reshape(40, -1)).shape == (40, 10)


def test_batchbald_cnn_follows_kirsch_et_al():
    from al_experiments.networks import batchbald_cnn

    net = batchbald_cnn((28, 28), 10)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Reshape"] + ["Conv2D", "SpatialDropout2D", "MaxPooling2D", "Activation"] * 2 + [
        "Flatten", "Dense", "Dropout", "Activation", "Dense"]
    assert [layer.filters for layer in net.layers if hasattr(layer, "filters")] == [32, 64]
    assert net.output_shape == (None, 10) and net.count_params() == 32 * 26 + 64 * 801 + 1024 * 128 + 128 + 1290
    with pytest.raises(ValueError, match="needs image inputs"):
        batchbald_cnn((64,), 10)


def test_cnn_follows_gal_et_al():
    from al_experiments.networks import cnn

    net = cnn((28, 28), 10, weight_decay=1e-4)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Reshape", "Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense",
                     "Dropout", "Dense"]
    assert [net.layers[i].rate for i in (4, 7)] == [0.25, 0.5]
    assert net.output_shape == (None, 10)
    with pytest.raises(ValueError, match="image inputs"):
        cnn((30,), 2)


def _write_npz(path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 255, (60, 6, 6)).astype("uint8"), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 255, (12, 6, 6)).astype("uint8"), y_test=np.arange(12) % 3)


def _write_idx(folder: Path) -> None:
    rng = np.random.default_rng(0)
    def idx(name: str, array: np.ndarray, zipped: bool) -> None:
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        data = header + array.astype("uint8").tobytes()
        if zipped:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    idx("train-images-idx3-ubyte", rng.integers(0, 255, (60, 6, 6)), True)
    idx("train-labels-idx1-ubyte", np.arange(60) % 3, False)
    idx("t10k-images-idx3-ubyte", rng.integers(0, 255, (12, 6, 6)), True)
    idx("t10k-labels-idx1-ubyte", np.arange(12) % 3, False)


# Files each file-based dataset option is tested with (the tests write them; no download).
_FILES = {"npz": "d.npz", "idx": "", "mnist": "d.npz", "fashion_mnist": ""}
_IMAGES = ("mnist", "fashion_mnist")  # these add a channel axis for the CNN


@pytest.mark.parametrize("name", options("dataset"))
def test_dataset_options_build(name, tmp_path):
    from al_experiments.app.build import build_dataset

    overrides = [f"dataset={name}", "loop.init_size=6"]
    if name in _FILES:
        _write_npz(tmp_path / "d.npz")
        _write_idx(tmp_path)
        overrides.append(f"dataset.path={tmp_path / _FILES[name]}")
    cfg = compose("config", overrides=overrides)
    validate(cfg)
    dataset, info, _ = build_dataset(cfg)
    assert info.train_size > 0 and info.test_size > 0 and dataset.get_init_size() == 6
    assert len(info.content_hash) == 16
    x_train, _ = dataset.get_train_split()
    assert np.abs(x_train).max() <= 1.0 + 1e-6 or cfg.dataset.scaling.name == "standard"
    if name in _FILES:
        shape = (6, 6, 1) if name in _IMAGES else (6, 6)
        assert (info.train_size, info.test_size, info.input_shape) == (60, 12, shape)
        assert info.path == str(tmp_path / _FILES[name]).rstrip("/")


@pytest.mark.parametrize("name", _IMAGES)
def test_image_datasets_take_a_stratified_validation_split(name, tmp_path):
    from al_experiments.app.build import build_dataset

    _write_idx(tmp_path)
    cfg = compose("config", overrides=[f"dataset={name}", f"dataset.path={tmp_path}", "dataset.val_size=12",
                                       "loop.init_size=6", "model=mc_dropout_cnn"])
    dataset, info, _ = build_dataset(cfg)
    assert (info.train_size, info.val_size, info.test_size) == (48, 12, 12)
    assert np.bincount(dataset.get_eval_split()[1]).tolist() == [4, 4, 4]
    assert dataset.get_eval_split()[0].max() <= 1.0


@pytest.mark.parametrize("name, needle", [
    ("npz", "download"), ("idx", "download"), ("mnist", "dataset.path="),
    ("fashion_mnist", "sudo apt-get install dataset-fashion-mnist"),
])
def test_missing_dataset_file_is_one_sentence(name, needle, tmp_path):
    from al_experiments.app.build import build_dataset

    cfg = compose("config", overrides=[f"dataset={name}", f"dataset.path={tmp_path / 'nope'}"])
    with pytest.raises(DataError, match=needle) as info:
        build_dataset(cfg)
    assert "\n" not in str(info.value) and "nope" in str(info.value)


def test_mnist_without_a_path_says_how_to_get_it():
    from al_experiments.app.build import build_dataset

    with pytest.raises(DataError, match=r"MNIST is not bundled and nothing is downloaded: pass dataset\.path="):
        build_dataset(compose("config", overrides=["dataset=mnist"]))


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_launcher_options_compose(name):
    cfg = compose("config", overrides=[f"hydra/launcher={name}", "hydra.launcher.timeout_min=7"],
                  return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert "submitit" in launcher._target_ and launcher.timeout_min == 7
    if name == "slurm":
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                           "hydra.launcher.gpus_per_node=1", "hydra.launcher.mem_gb=16",
                                           "hydra.launcher.cpus_per_task=8"], return_hydra_config=True)
        assert (cfg.hydra.launcher.partition, cfg.hydra.launcher.gpus_per_node) == ("gpu", 1)


def test_sweep_callback_is_on_by_default():
    cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.callbacks.mlflow_sweep._target_.endswith("MlflowSweepCallback")
    instantiate(cfg.hydra.callbacks.mlflow_sweep)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_presets_compose(name):
    cfg = compose("config", overrides=[f"+experiment={name}"])
    assert OmegaConf.missing_keys(cfg) == set()
    validate(cfg)


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as info:
        compose("config", overrides=["query=bqld"])
    assert "bald" in str(info.value.options) or "bald" in str(info.value)


@pytest.mark.parametrize("override", [
    "loop.step_size=ten",          # not an int
    "seed=1.5",                    # not an int
    "query.sample_size=[1,2]",     # not a scalar
    "model.network.dropout=high",  # not a float
    "model.network.dropot=0.1",    # misspelt key
    "dataset.scaling=cubic",       # not a Scaling
    "loop.max_steps=3",            # unknown key
])
def test_schema_rejects_wrong_types_and_keys(override):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)):
        compose("config", overrides=[override])


@pytest.mark.parametrize("override, key", [
    ("loop.step_size=0", "loop.step_size"),
    ("loop.init_size=-1", "loop.init_size"),
    ("query.name=bqld", "query.name"),
    ("query.sample_size=0", "query.sample_size"),
    ("model.fit.epochs=0", "model.fit.epochs"),
    ("model.network.dropout=1.5", "model.network.dropout"),
    ("dataset.test_size=2.5", "dataset.test_size"),
])
def test_validate_rejects_impossible_values(override, key):
    cfg = compose("config", overrides=[override])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        validate(cfg)
    assert "\n" not in str(info.value)


def test_wrapper_arguments_are_checked_when_building():
    from al_experiments.app.build import build_model

    cfg = compose("config", overrides=["model.wrapper.reset=cold"])
    with pytest.raises(ConfigError, match="model.wrapper is invalid: reset='cold' is invalid: it must be one of 'reinit', 'initial', 'warm'"):
        build_model(cfg, (8, 8), 10)


def test_ensemble_size_is_checked_when_building_and_only_ensembles_have_one():
    from al_experiments.app.build import build_model

    cfg = compose("config", overrides=["model=ensemble_mlp", "model.wrapper.members=0"])
    with pytest.raises(ConfigError, match="model.wrapper is invalid: members=0 is invalid: it must be a whole number >= 1"):
        build_model(cfg, (8, 8), 10)
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)):
        compose("config", overrides=["model=mc_dropout_mlp", "model.wrapper.members=3"])


def test_init_size_larger_than_pool_is_rejected_when_building():
    from al_experiments.app.build import build_dataset

    cfg = compose("config", overrides=["loop.init_size=100000"])
    with pytest.raises(ConfigError, match="loop.init_size=100000 is larger than the training pool"):
        build_dataset(cfg)


@pytest.mark.parametrize("overrides, match", [
    (["query=batch_bald", "query.options.num_samples=0"], r"query\.options: num_samples=0 is invalid"),
    (["query=power_bald", "query.options.temperature=-1"], r"query\.options: temperature=-1 is invalid: it must be a finite number > 0\."),
    (["query=bald", "query.options.stochastic=gumbel"], r"query\.options: stochastic='gumbel'"),
    (["query=epig", "query.options.target=test"], r"query\.options: target='test'"),
    (["query=coreset", "+query.options.temperature=1"], r"query\.options: .*'coreset' got unknown option"),
    (["query=epig", "query.options.target=validation"], r"target=validation needs a validation split"),
    (["dataset.repeat=0"], r"dataset\.repeat=0"),
    (["model.fit.patience=3"], r"model\.fit\.patience=3 stops training on the validation split, but there is none"),
    (["model.fit.epoch_samples=0"], r"model\.fit\.epoch_samples=0"),
    (["dataset.repeat_noise=-0.1"], r"dataset\.repeat_noise=-0.1"),
])
def test_strategy_options_and_repeats_are_checked_before_any_work(overrides, match):
    cfg = compose("config", overrides=overrides)
    with pytest.raises(ConfigError, match=match) as info:
        validate(cfg)
    assert "\n" not in str(info.value)


def test_query_samples_reach_the_acquisition_function_and_a_wrong_kind_is_refused():
    from al_experiments.app.build import build_query

    cfg = compose("config", overrides=["query=power_bald", "query.samples=consistent"])
    validate(cfg)
    query = build_query(cfg)
    assert query.samples == "consistent" and query.samples_used() == "consistent"
    assert build_query(compose("config", overrides=["query=coreset"])).samples_used() == "deterministic"
    with pytest.raises(Exception, match="joint"):
        compose("config", overrides=["query.samples=joint"])


def test_a_model_needs_a_network_or_an_estimator_and_the_initial_draw_is_a_setting():
    from al_experiments.app.build import build_dataset

    with pytest.raises(ConfigError, match="needs exactly one of model.network .* and model.estimator"):
        validate(compose("config", overrides=["model=svm_rbf", "+model.network={_target_: x}"]))
    with pytest.raises(ConfigError, match="needs exactly one of model.network"):
        validate(compose("config", overrides=["model.network=null"]))
    dataset, _, _ = build_dataset(compose("config", overrides=["loop.init_strategy=random"]))
    assert dataset.init_strategy == "random"
    with pytest.raises(Exception, match="sometimes"):
        compose("config", overrides=["loop.init_strategy=sometimes"])


def test_query_options_reach_the_acquisition_function():
    from al_experiments.app.build import build_query

    cfg = compose("config", overrides=["query=bald", "query.options.stochastic=softmax",
                                       "query.options.temperature=0.5"])
    validate(cfg)
    assert build_query(cfg).settings == {"stochastic": "softmax", "temperature": 0.5}
    cfg = compose("config", overrides=["query=epig", "query.options.target_size=7"])
    assert build_query(cfg).settings["target_size"] == 7


def test_repeated_pool_holds_noisy_copies_and_leaves_test_alone():
    from al_experiments.app.build import build_dataset

    plain, _, _ = build_dataset(compose("config", overrides=["seed=3"]))
    exact, info, _ = build_dataset(compose("config", overrides=["seed=3", "dataset.repeat=3"]))
    noisy, _, _ = build_dataset(compose("config", overrides=["seed=3", "dataset.repeat=3", "dataset.repeat_noise=0.1"]))
    x, y = plain.get_train_split()
    xr, yr = exact.get_train_split()
    xn, yn = noisy.get_train_split()
    n = len(x)
    assert info.train_size == 3 * n and len(xr) == len(xn) == 3 * n
    for copy in range(3):
        np.testing.assert_array_equal(xr[copy * n:(copy + 1) * n], x)
        np.testing.assert_array_equal(yr[copy * n:(copy + 1) * n], y)
        np.testing.assert_array_equal(yn[copy * n:(copy + 1) * n], y)
    residual = xn - xr
    assert abs(residual.std() - 0.1) < 0.005 and abs(residual.mean()) < 0.005
    assert not np.allclose(residual[:n], residual[n:2 * n])  # each copy has its own noise
    assert residual[:n].std() > 0.09  # the first copy too
    # The pool knows its copies: a batch of four holding two copies of image 5 counts one.
    np.testing.assert_array_equal(noisy.copy_of, np.tile(np.arange(n), 3))
    assert noisy.copies_in([5, n + 5, 6, 7]) == 1 and noisy.copies_in([5, n + 5, 2 * n + 5, 7]) == 2
    assert plain.copy_of is None and plain.copies_in([1, 2]) is None
    for split in ("get_test_split", "get_eval_split"):
        for a, b in zip(getattr(plain, split)(), getattr(noisy, split)()):
            assert (a is None and b is None) or np.array_equal(a, b)
