"""The package as a user installs it: a wheel built from this tree, installed into a fresh
environment where the source tree is not importable, run from an empty directory; then a
project of the user's own (``examples/my_al_project``) installed next to it, adding a network,
two strategies and a preset that ``al-run -m`` sweeps.

The fresh environment gets its dependencies (TensorFlow, MLflow, Hydra, ...) from the test's
own environment through a path file, so nothing is downloaded; the package itself comes only
from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from _app_helpers import mlflow_runs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "src" / "al_experiments" / "conf"
SMOKE = ["+experiment=smoke"]


def run(command: list[str], cwd: Path, timeout: float = 300, extra_env: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "VIRTUAL_ENV")}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", **(extra_env or {})})
    return subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def copy_tree(names: list[str], source: Path, target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    target.mkdir(parents=True)
    for name in names:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=ignore)
        else:
            shutil.copy2(path, target / name)


def pip_install(env_python: Path, *args: str | Path, cwd: Path) -> None:
    # pip of the test's environment installs into the fresh one (--python), offline.
    ok(run([sys.executable, "-m", "pip", "--python", env_python, "install", "--quiet", "--no-deps",
            "--no-index", *args], cwd=cwd))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("install")
    copy_tree(["pyproject.toml", "README.md", "LICENSE", "src"], REPO, root / "source")
    ok(run([sys.executable, "-m", "build", "--no-isolation", "--outdir", root / "dist", root / "source"], cwd=root))
    (wheel,) = (root / "dist").glob("*.whl")
    (sdist,) = (root / "dist").glob("*.tar.gz")
    env = root / "env"
    ok(run([sys.executable, "-m", "venv", "--without-pip", env], cwd=root))
    python = env / "bin" / "python"
    purelib = ok(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root))
    # Dependencies only: a path entry does not run the .pth files (the editable install) there.
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip_install(python, wheel, cwd=root)
    return SimpleNamespace(root=root, wheel=wheel, sdist=sdist, bin=env / "bin", python=python)


def shipped_configs() -> set[str]:
    return {p.relative_to(CONF.parent.parent).as_posix() for p in CONF.rglob("*.yaml")}


def test_wheel_and_sdist_carry_the_config_tree(installed):
    expected = shipped_configs()
    assert "al_experiments/conf/config.yaml" in expected and "al_experiments/conf/query/bald.yaml" in expected
    with zipfile.ZipFile(installed.wheel) as wheel:
        assert expected <= set(wheel.namelist())
        # Hydra finds al-run's sweeper and pool launcher only in the hydra_plugins namespace
        assert {f"hydra_plugins/{name}/__init__.py" for name in ("al_experiments_sweeper", "al_experiments_pool")} \
            <= set(wheel.namelist())
    with tarfile.open(installed.sdist) as sdist:
        members = {name.split("/src/", 1)[-1] for name in sdist.getnames() if "/src/" in name}
    assert expected <= members


def test_installed_app_runs_and_reports_from_an_empty_directory(installed, tmp_path):
    where = ok(run([installed.python, "-c", "import al_experiments; print(al_experiments.__file__)"], cwd=tmp_path))
    assert where.stdout.strip().startswith(str(installed.root / "env"))
    ok(run([installed.bin / "al-run", *SMOKE], cwd=tmp_path))
    (job,) = mlflow_runs(tmp_path)
    assert job.info.status == "FINISHED" and job.data.params["query.name"] == "bald"
    report = ok(run([installed.bin / "al-report"], cwd=tmp_path))
    assert (tmp_path / "report" / "summary.md").is_file(), report.stdout


@pytest.fixture(scope="module")
def project(installed) -> Path:
    """The example project, installed into the fresh environment as a user installs it."""
    path = installed.root / "my_al_project"
    copy_tree(["pyproject.toml", "README.md", "src", "conf"], REPO / "examples" / "my_al_project", path)
    pip_install(installed.python, "--no-build-isolation", path, cwd=installed.root)
    return path


def test_user_project_adds_strategies_network_and_preset_to_a_sweep(installed, project, tmp_path):
    ok(run([installed.bin / "al-run", "--config-dir", project / "conf", "-m", "+experiment=my_quick",
            "query=confidence_ratio,class_balanced_bald", "seed=0", "loop.max_rounds=2", "model.fit.epochs=5",
            "query.sample_size=5", "model.eval.sample_size=5"], cwd=tmp_path))
    jobs = [r for r in mlflow_runs(tmp_path) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.params["query.name"] for r in jobs) == ["class_balanced_bald", "confidence_ratio"]
    for job in jobs:
        assert job.info.status == "FINISHED"
        assert job.data.params["model.network._target_"] == "my_al_project.networks.two_layer_mlp"
    batch_job = next(r for r in jobs if r.data.params["query.name"] == "class_balanced_bald")
    assert batch_job.data.params["query.options.per_class"] == "None"  # the selector's default


def test_user_strategies_in_the_python_api(installed, project, tmp_path):
    code = ("from al_experiments import AcquisitionFunction\n"
            "from al_experiments.acquisition import get_query\n"
            "print(get_query('confidence_ratio').kind, get_query('class_balanced_bald').kind,\n"
            "      AcquisitionFunction('class_balanced_bald', options={'per_class': 2}).settings['per_class'])\n")
    assert ok(run([installed.python, "-c", code], cwd=tmp_path)).stdout.split() == ["score", "batch", "2"]


def test_user_strategy_options_are_checked_before_any_work(installed, project, tmp_path):
    result = run([installed.bin / "al-run", "--config-dir", project / "conf", "+experiment=my_quick",
                  "query.options.per_class=0"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: query.options: per_class=0 is invalid: it must be a whole number >= 1 or null.")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_broken_plugin_stops_al_run_with_one_sentence(installed, tmp_path):
    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[al_experiments.strategies]\nbroken = broken_plugin_mod:fn\n")
    (site / "broken_plugin_mod.py").write_text("raise RuntimeError('the plug-in is broken')\n")
    result = run([installed.bin / "al-run", *SMOKE], cwd=tmp_path, extra_env={"PYTHONPATH": str(site)})
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: The query strategy entry point 'broken'") and "broken-plugin 0.1" in line
    assert "RuntimeError: the plug-in is broken" in line
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "outputs").exists()
