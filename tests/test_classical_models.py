"""Classical models behind the generic wrapper, as classical active-learning benchmarks run them:
an SVC without probabilities (evaluated from predict, margins from its decision function), the
input features as Core-set's space, a uniformly random initial set that misses a class, and the
model configs from the command line."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from al_experiments import ActiveLearningLoop, Dataset
from al_experiments.acquisition import AcquisitionFunction
from al_experiments.acquisition.scores import decision_least_confidence, decision_margin
from al_experiments.pool import Pool
from al_experiments.wrapper import Model


def test_decision_margins_against_hand_computed_values():
    # Binary: |f(x)|, the smaller the more uncertain (scores are negated: higher = query first).
    np.testing.assert_allclose(decision_margin([0.5, -2.0, 0.1, -0.3]), [-0.5, -2.0, -0.1, -0.3])
    np.testing.assert_allclose(decision_least_confidence([0.5, -2.0]), [-0.5, -2.0])
    # Several classes: the top two values (margin) or the top one (least confidence).
    values = [[2.2, 1.0, 0.1], [0.3, 2.5, 2.4], [-1.0, 0.0, 1.0]]
    np.testing.assert_allclose(decision_margin(values), [-1.2, -0.1, -1.0])
    np.testing.assert_allclose(decision_least_confidence(values), [-2.2, -2.5, -1.0])
    with pytest.raises(ValueError, match=r"decision values must have shape \(N,\) or \(N, C\)"):
        decision_margin(np.zeros((2, 2, 2)))


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    return Dataset(x, y, test_size=0.25, init_size=10, seed=0)


def test_an_svc_without_probabilities_runs_end_to_end(cancer):
    model = Model(SVC())
    loop = ActiveLearningLoop(model, cancer, "margin", step_size=1, max_rounds=5, seed=0)
    history = loop.run()
    # Evaluated from predict: the reported accuracy is the SVC's own on the test set.
    x_test, y_test = cancer.get_test_split()
    assert history[-1]["eval"]["accuracy"] == pytest.approx((model.get_model().predict(x_test) == y_test).mean())
    # Each pick is the unlabelled point closest to the boundary of that round's SVC.
    last = ActiveLearningLoop(Model(SVC()), cancer, "margin", step_size=1, max_rounds=1, seed=0)
    svc = SVC(random_state=None)
    pool = last.pool
    chosen = last.step()["indices_selected"][0]
    labelled = pool.get_labeled_indices()
    labelled = labelled[labelled != chosen]
    x_train, y_train = cancer.get_train_split()
    fitted = last.model.get_model()
    unlabelled = np.setdiff1d(np.arange(len(x_train)), labelled)
    assert chosen == unlabelled[np.argmin(np.abs(fitted.decision_function(x_train[unlabelled])))]
    assert fitted.get_params()["kernel"] == svc.get_params()["kernel"]
    # Random selection needs no scores at all; a probability-based score is one sentence.
    assert len(ActiveLearningLoop(Model(SVC()), cancer, "random", step_size=3, max_rounds=2, seed=0).run()) == 2
    with pytest.raises(ValueError, match="The wrapped SVC gives decision values, not probabilities"):
        ActiveLearningLoop(Model(SVC()), cancer, "bald", step_size=1, max_rounds=1, seed=0).run()


def test_multi_class_margin_from_the_top_two_decision_values():
    x, y = load_iris(return_X_y=True)
    ds = Dataset(x, y, test_size=0.3, init_size=9, seed=1)
    loop = ActiveLearningLoop(Model(SVC()), ds, "margin", step_size=1, max_rounds=1, seed=1)
    chosen = loop.step()["indices_selected"][0]
    svc = loop.model.get_model()
    unlabelled = loop.pool.get_unlabeled_indices()
    candidates = np.append(unlabelled, chosen)
    values = np.sort(svc.decision_function(ds.get_train_inputs()[candidates]), axis=1)
    assert chosen == candidates[np.argmin(values[:, -1] - values[:, -2])]


def test_coreset_on_the_input_features_against_brute_force_k_center(cancer):
    x_train, _ = cancer.get_train_split()
    pool = Pool(x_train, cancer.get_train_targets())
    pool.annotate(np.arange(0, 400, 40))
    model = Model(SVC())
    model.fit(x_train[pool.get_labeled_indices()], pool.get_targets_by(pool.get_labeled_indices()))
    picked, _ = AcquisitionFunction("coreset")(model, pool, step_size=5, rng=np.random.default_rng(0))
    # Brute force: each pick the unlabelled point farthest from every point chosen so far.
    centres = list(pool.get_labeled_indices())
    expected = []
    for _ in range(5):
        candidates = [i for i in pool.get_unlabeled_indices() if i not in expected]
        distance = [min(np.linalg.norm(x_train[i] - x_train[c]) for c in centres) for i in candidates]
        expected.append(candidates[int(np.argmax(distance))])
        centres.append(expected[-1])
    assert picked[::-1].tolist() == expected  # tf_al order: best last


def test_a_random_initial_set_may_miss_a_class_and_predictions_keep_their_class_columns():
    x, y = load_iris(return_X_y=True)
    # Three initial labels drawn uniformly: the first loop seed whose draw holds two classes.
    ds = Dataset(x, y, test_size=0.3, init_size=3, seed=0, init_strategy="random")
    model = Model(LogisticRegression(max_iter=500))
    for seed in range(50):
        loop = ActiveLearningLoop(model, ds, "random", step_size=1, max_rounds=1, seed=seed)
        initial = set(ds.get_train_targets()[loop.initial_indices].tolist())
        if len(initial) == 2:
            break
    assert len(initial) == 2, "no seed of 50 drew two classes of three: the draw is not uniform"
    step = loop.step()
    x_test, y_test = ds.get_test_split()
    probs = model.predict(x_test)
    assert probs.shape == (len(x_test), 3)  # a column per class of the dataset, the missing one 0
    missing = ({0, 1, 2} - initial).pop()
    assert np.all(probs[:, missing] == 0)
    fitted = model.get_model()
    assert step["eval"]["accuracy"] == pytest.approx((fitted.predict(x_test) == y_test).mean())
    # A balanced initial set of three holds every class.
    balanced = ActiveLearningLoop(Model(LogisticRegression()), Dataset(x, y, test_size=0.3, init_size=3, seed=0),
                                  "random", step_size=1, max_rounds=1, seed=seed)
    assert len(set(ds.get_train_targets()[balanced.initial_indices].tolist())) == 3


def test_one_class_in_the_labelled_set_is_one_sentence(cancer):
    x_train, y_train = cancer.get_train_split()
    ones = np.flatnonzero(y_train == 1)[:4]
    ds = Dataset(x_train, y_train, init_indices=ones)
    with pytest.raises(ValueError, match=r"The labelled set holds one class only \(1\), which the wrapped SVC "
                                         r"cannot be fit on .*loop.init_strategy=balanced"):
        ActiveLearningLoop(Model(SVC()), ds, "margin", step_size=1, max_rounds=1, seed=0).run()
    with pytest.raises(ValueError, match="init_strategy='any' is invalid: it must be one of 'balanced'"):
        Dataset(x_train, y_train, init_size=4, init_strategy="any")


@pytest.mark.slow
def test_classical_models_as_jobs(job_config, folder):
    """Each classical model of the config tree as a job: composed, built, run and logged."""
    from _app_helpers import mlflow_runs

    from al_experiments.app.job import JobContext, run_job

    for job_num, (model, query) in enumerate((m, q) for m in ("svm_rbf", "logistic_regression", "random_forest")
                                             for q in ("margin", "coreset")):
        run_job(job_config(f"model={model}", "dataset=breast_cancer", "dataset.scaling=standard", f"query={query}",
                           "loop.init_size=10", "loop.step_size=1", "loop.max_rounds=3", "loop.init_strategy=random"),
                JobContext(job_num=job_num))
    runs = mlflow_runs(folder)
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    svm = [r for r in runs if r.data.params["model.name"] == "svm_rbf"]
    assert {r.data.params["model.estimator._target_"] for r in svm} == {"sklearn.svm.SVC"}
    assert {r.data.tags["samples"] for r in svm} == {"decision function", "deterministic"}  # margin, coreset
    assert all(0.5 < r.data.metrics["test_accuracy"] <= 1 for r in runs)


@pytest.mark.slow
def test_a_classical_job_never_loads_tensorflow(tmp_path):
    """A job of a classical model runs to the end in a fresh interpreter without TensorFlow or
    Keras ever being imported (its start-up is the slow part of a job's process), also where a
    network's job would set TensorFlow up first (its threads under SLURM, the compile cache)."""
    import subprocess
    import sys

    from _app_helpers import QUICK_CLASSICAL, cli_command

    command, env = cli_command(tmp_path, *QUICK_CLASSICAL)
    env["SLURM_CPUS_PER_TASK"] = "1"
    script = ("import sys; from al_experiments.app.cli import main; sys.argv = ['al-run', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
              "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
              "assert not loaded, loaded\nprint('done without', 'tensorflow')")
    overrides = command[command.index(QUICK_CLASSICAL[0]):]
    result = subprocess.run([sys.executable, "-c", script, *overrides], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "done without tensorflow" in result.stdout, result.stderr[-3000:]
    assert not list(tmp_path.rglob("compile-cache"))
