"""A script written as a tf_al 0.1.1 user would write it (only the import changed), run as a real
subprocess, and its files read back the way tf_al's readers read them."""

from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

SEED = 20432
QUERIES = ["random", "max_entropy", "bald", "max_var_ratio", "std_mean"]
HEADER = ("train_loss train_sparse_categorical_accuracy train_time query_time "
          "eval_sparse_categorical_crossentropy eval_sparse_categorical_accuracy eval_time "
          "indices_selected iteration labeled_pool_size unlabeled_pool_size").split()

SCRIPT = textwrap.dedent(
    '''
    import json
    import os
    import sys

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from al_experiments import ActiveLearningLoop, Dataset, Config, ExperimentSuit, ExperimentSuitMetrics
    from al_experiments.wrapper import McDropout
    from al_experiments.utils.logger import setup_logger
    from al_experiments.utils.tf import disable_tf_logs, set_tf_log_level, setup_growth

    disable_tf_logs()
    set_tf_log_level("2")
    setup_growth()
    logger = setup_logger(True, name="experiment")

    import tensorflow as tf
    from tensorflow import keras

    BASE_PATH = sys.argv[1]
    METRICS_PATH = os.path.join(BASE_PATH, "metrics", "digits")
    os.makedirs(os.path.dirname(METRICS_PATH), exist_ok=True)

    inputs, targets = load_digits(return_X_y=True)
    inputs = (inputs / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs, targets, train_size=300, test_size=150, random_state=0, stratify=targets)

    np.random.seed(1)
    tf.random.set_seed(1)
    model = keras.Sequential([
        keras.layers.Input(shape=(64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(10, activation="softmax"),
    ])

    fit_params = {"epochs": 30, "batch_size": 10}
    query_params = {"sample_size": 5}
    eval_params = {"batch_size": 50, "sample_size": 5}
    config = Config(fit=fit_params, query=query_params, eval=eval_params)

    mc_model = McDropout(model, config)
    mc_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                     metrics=[keras.metrics.SparseCategoricalAccuracy()])

    dataset = Dataset(x_train, y_train, test=(x_test, y_test), init_size=10)

    # A loop iterated by hand.
    active_learning_loop = ActiveLearningLoop(mc_model, dataset, "max_entropy", step_size=10, max_rounds=3)
    by_hand = []
    for metrics in active_learning_loop:
        logger.info("round %d: %s", len(by_hand) + 1, metrics["eval"])
        by_hand.append(metrics)
    while active_learning_loop.has_next():
        active_learning_loop.step()

    # The five tf_al strategies through ExperimentSuit, written by ExperimentSuitMetrics.
    metrics_handler = ExperimentSuitMetrics(METRICS_PATH)
    metrics_handler.add_dataset_meta("digits", "sklearn.datasets.load_digits", len(x_train), len(x_test))
    query_fns = ["random", "max_entropy", "bald", "max_var_ratio", "std_mean"]
    experiments = ExperimentSuit(
        mc_model, query_fns, dataset, step_size=10, max_rounds=3, seed=[__SEED__],
        no_save_state=True, metrics_handler=metrics_handler,
    )
    experiments.start()

    # Re-open the directory: the reconstructed files are locked until unlocked.
    metrics = ExperimentSuitMetrics(METRICS_PATH)
    names = sorted(metrics.experiment_files)
    locked = []
    for name in names:
        try:
            metrics.write_line(name, {"note": 1})
        except ValueError:
            locked.append(name)
    metrics.unlock(names[0])
    metrics.write_line(names[0], {"iteration": 4})
    metrics.unlock_all()
    unlocked_ok = True
    for name in names[1:]:
        metrics.write_line(name, {"iteration": 4})

    summary = {
        "loop_len": len(active_learning_loop),
        "by_hand_keys": [list(step) for step in by_hand],
        "by_hand_sizes": [len(step["indices_selected"]) for step in by_hand],
        "names": names,
        "status": sorted(set(metrics.experiment_files.values())),
        "locked": locked,
        "meta": metrics.read_meta(),
        "dataset": metrics.get_dataset_info(),
        "bald_meta": metrics.get_experiment_meta("0___SEED___mc_dropout_bald"),
        "rows": {name: metrics.read(name) for name in names},
        "config_query": config["query"],
    }
    with open(os.path.join(BASE_PATH, "summary.json"), "w") as handle:
        json.dump(summary, handle)
    print("done")
    '''
).replace("__SEED__", str(SEED))


@pytest.mark.slow
def test_tf_al_script_runs_unchanged_and_files_read_back(tmp_path):
    script = tmp_path / "experiment.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "done" in result.stdout
    assert "Physical CPU" in result.stdout or "Physical GPU" in result.stdout  # setup_growth's line

    summary = json.loads((tmp_path / "summary.json").read_text())
    step_keys = ["train", "train_time", "query_time", "optim", "optim_time", "eval", "eval_time", "indices_selected"]
    assert summary["loop_len"] == 3
    assert summary["by_hand_keys"] == [step_keys] * 3
    assert summary["by_hand_sizes"] == [10, 10, 10]
    assert summary["config_query"] == {"sample_size": 5}

    names = [f"0_{SEED}_mc_dropout_{q}" for q in QUERIES]
    assert summary["names"] == sorted(names)
    assert summary["locked"] == sorted(names)
    assert summary["status"] == [1]
    assert summary["dataset"] == {"name": "digits", "path": "sklearn.datasets.load_digits",
                                  "train_size": 300, "test_size": 150}
    experiments = summary["meta"]["experiments"]
    assert [e["experiment_name"] for e in experiments] == names
    assert summary["bald_meta"]["query_fn"] == "bald" and summary["bald_meta"]["model"] == "mc_dropout"
    assert summary["bald_meta"]["params"]["iterations"] == 3
    assert summary["bald_meta"]["params"]["initial_size"] == 10

    # Read the files back as tf_al's readers did: file names split on "_", space-delimited CSV.
    metrics_dir = tmp_path / "metrics" / "digits"
    csv_files = sorted(f for f in os.listdir(metrics_dir) if f.endswith(".csv"))
    assert csv_files == sorted(n + ".csv" for n in names)
    for filename in csv_files:
        parts = filename[:-4].split("_")
        assert parts[0] == "0" and parts[1] == str(SEED)
        raw = (metrics_dir / filename).read_bytes()
        assert raw.count(b"\r\n") == 5 and b"\n" not in raw.replace(b"\r\n", b"")
        with open(metrics_dir / filename, newline="") as handle:
            reader = csv.DictReader(handle, delimiter=" ", quotechar='"')
            assert reader.fieldnames == HEADER
            rows = list(reader)
        assert len(rows) == 4
        assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
        for row in rows[:3]:
            losses = ast.literal_eval(row["train_loss"])
            assert len(losses) == 30 and all(isinstance(v, float) for v in losses)
            assert 0.0 <= float(row["eval_sparse_categorical_accuracy"]) <= 1.0
            assert float(row["eval_sparse_categorical_crossentropy"]) > 0.0
            assert len(set(ast.literal_eval(row["indices_selected"]))) == 10
            assert int(row["labeled_pool_size"]) + int(row["unlabeled_pool_size"]) + 10 == 300
        assert [r["labeled_pool_size"] for r in rows[:3]] == ["10", "20", "30"]
        assert rows[3]["train_loss"] == ""  # the appended row has only its own column
        assert summary["rows"][filename[:-4]][:3] == [
            {k: v for k, v in r.items()} for r in rows[:3]
        ]
