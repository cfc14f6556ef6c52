"""``al-report`` end to end on one real tiny sweep (``report=true``), read back from MLflow (by
experiment and by parent run) and from the sweep's metrics directory: the same tables."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _app_helpers import QUICK, mlflow_runs, run_cli, store_uri

pytestmark = pytest.mark.slow

_SCRIPT = Path(sys.executable).parent / "al-report"
AL_REPORT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "al_experiments.report.cli"]
TARGETS = ["--targets", "0.12", "0.9"]
FILES = ["comparison.csv", "learning_curves.png", "learning_curves.svg", "summary.csv", "summary.md"]


def al_report(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AL_REPORT, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def al_reports(cwd: Path, commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Several ``al-report`` runs at once (each spends most of its time importing)."""
    started = {name: subprocess.Popen([*AL_REPORT, *args], cwd=cwd, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name, args in commands.items()}
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=180)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


def parent_artifacts(tmp: Path, run_id: str) -> list[str]:
    from mlflow import MlflowClient

    return sorted(a.path for a in MlflowClient(store_uri(tmp)).list_artifacts(run_id, "report"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2 strategies x 2 seeds smoke sweep with report=true, on a pool that holds every image
    twice (so each round counts its copies); what the callback left behind is recorded before
    any test logs to the parent run again."""
    tmp = tmp_path_factory.mktemp("report_sweep")
    result = run_cli(tmp, "-m", *QUICK, "query=random,bald", "seed=0,1", "report=true", "dataset.repeat=2")
    assert result.returncode == 0, result.stderr[-3000:]
    [parent] = [r for r in mlflow_runs(tmp) if r.data.tags.get("run_kind") == "sweep"]
    return {"tmp": tmp, "parent": parent, "artifacts": parent_artifacts(tmp, parent.info.run_id),
            "uri": store_uri(tmp), "log": result.stderr}


def _tables(folder: Path) -> tuple[str, str, str]:
    """summary.csv, comparison.csv and the Markdown without its Source line, and the metric's
    name (test_accuracy in MLflow, tf_al's eval_sparse_categorical_accuracy in the CSV)."""
    markdown = [line.replace("test_accuracy", "eval_sparse_categorical_accuracy")
                for line in (folder / "summary.md").read_text().splitlines() if not line.startswith("- Source:")]
    return (folder / "summary.csv").read_text(), (folder / "comparison.csv").read_text(), "\n".join(markdown)


def test_report_true_writes_the_sweep_report_and_logs_it_to_the_parent(sweep):
    folder = sweep["tmp"] / "sweep" / "report"
    assert sorted(p.name for p in folder.iterdir()) == FILES
    assert sweep["artifacts"] == [f"report/{name}" for name in FILES]
    assert sweep["parent"].info.status == "FINISHED"
    text = (folder / "summary.md").read_text()
    assert "## digits / mc_dropout_mlp" in text and "| random | 2 |" in text and "| bald | 2 |" in text
    assert "not reached in 2 of 2" in text  # 0.9 after 30 labels and 5 epochs: never
    assert "Paired comparison with random" in text
    # What each strategy ran on, and the copies in its batches (mean over rounds, then seeds).
    head = next(line for line in text.splitlines() if line.startswith("| strategy | seeds |"))
    assert head.endswith("| samples | copies per batch |")
    assert re.search(r"^\| random \| 2 \|.*\| none \| \d\.\d\d ± \d\.\d\d \|$", text, re.M), text
    assert re.search(r"^\| bald \| 2 \|.*\| independent \| \d\.\d\d ± \d\.\d\d \|$", text, re.M), text


def test_mlflow_and_csv_sources_give_the_same_tables(sweep):
    tmp, uri = sweep["tmp"], sweep["uri"]
    parent_id = sweep["parent"].info.run_id
    runs = al_reports(tmp, {
        "experiment": ["--tracking-uri", uri, "--experiment", "al-experiments", "--out", "r_exp", "--no-log", *TARGETS],
        "parent": ["--tracking-uri", uri, "--parent-run", parent_id, "--out", "r_parent", *TARGETS],
        "csv": ["--metrics-dir", str(tmp / "sweep" / "metrics"), "--out", "r_csv", *TARGETS],
    })
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr[-3000:])
    folders = {"experiment": tmp / "r_exp", "parent": tmp / "r_parent", "csv": tmp / "r_csv"}
    for name, folder in folders.items():
        assert sorted(p.name for p in folder.iterdir()) == FILES, name
        assert (folder / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (folder / "learning_curves.svg").read_bytes()
        assert runs[name].stdout == (folder / "summary.md").read_text()  # the Markdown is printed
    tables = {name: _tables(folder) for name, folder in folders.items()}
    assert tables["experiment"] == tables["parent"] == tables["csv"]
    # by column name: a setting column comes after model when the jobs tag their setting
    summary_csv = list(csv.DictReader(io.StringIO(tables["csv"][0])))
    assert [row["strategy"] for row in summary_csv] == ["random", "bald"]
    assert all(row["seeds"] == "2" for row in summary_csv)  # two seeds each
    assert [row["samples"] for row in summary_csv] == ["none", "independent"]
    assert all(row["copies_per_batch_mean"] for row in summary_csv)  # copies per batch from either source
    assert "labels to 12%" in tables["csv"][2]
    assert "logged to MLflow run " + parent_id in runs["parent"].stderr
    assert "logged to MLflow run" not in runs["experiment"].stderr + runs["csv"].stderr
    assert parent_artifacts(tmp, parent_id) == [f"report/{name}" for name in FILES]


def test_no_runs_is_one_sentence_and_leaves_no_folder(sweep):
    from mlflow import MlflowClient

    tmp = sweep["tmp"]
    client = MlflowClient(sweep["uri"])
    if client.get_experiment_by_name("empty") is None:
        client.create_experiment("empty")
    result = al_report(tmp, "--tracking-uri", sweep["uri"], "--experiment", "empty", "--out", "r_empty")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: No finished al-run jobs in the experiment 'empty' of {sweep['uri']}."]
    assert result.stdout == ""
    assert not list(tmp.glob("*r_empty*"))  # neither the folder nor a temporary one


def test_an_old_report_is_replaced_but_other_folders_are_refused(sweep):
    tmp = sweep["tmp"]
    metrics = str(tmp / "sweep" / "metrics")
    old = tmp / "r_old"
    old.mkdir()
    (old / "summary.md").write_text("stale")
    (old / "stale.txt").write_text("stale")
    result = al_report(tmp, "--metrics-dir", metrics, "--out", "r_old")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in old.iterdir()) == FILES
    assert not [p for p in tmp.iterdir() if p.name.startswith(".r_old")]

    result = al_report(tmp, "--metrics-dir", metrics, "--out", "sweep")
    assert result.returncode == 1
    assert "holds no earlier report" in result.stderr and "Traceback" not in result.stderr
    assert (tmp / "sweep" / "metrics").is_dir()
