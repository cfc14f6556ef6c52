"""Real sweeps through hydra/launcher=local (submitit_local: one process per job) and
hydra/launcher=slurm (a real single-node SLURM cluster started by scripts/slurm_cluster.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from _app_helpers import QUICK, check_sweep, run_cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm_cluster.sh"


def test_local_launcher_sweep(tmp_path):
    start = time.perf_counter()
    result = run_cli(tmp_path, "-m", "hydra/launcher=local", "hydra.launcher.timeout_min=10",
                     *QUICK, "seed=0,1", timeout=400)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_sweep(tmp_path, jobs=2)
    # each job ran in its own process: submitit's folder holds one log per job
    assert len(list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))) == 2
    print(f"local launcher, 2-job sweep: {elapsed:.1f} s")


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the single-node cluster (root + apt needed); skip, saying why, if it cannot start."""
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM cluster needs root (apt-get, daemons as root)")
    if shutil.which("apt-get") is None:
        pytest.skip("the single-node SLURM cluster needs apt-get to install Debian's slurm packages")
    up = subprocess.run(["bash", str(CLUSTER), "up"], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        pytest.skip(f"scripts/slurm_cluster.sh up failed (rc {up.returncode}): {up.stderr.strip()[-500:]}")
    yield
    subprocess.run(["bash", str(CLUSTER), "down"], capture_output=True, text=True, timeout=300)


@pytest.mark.slurm
def test_slurm_launcher_sweep(slurm_cluster, tmp_path):
    start = time.perf_counter()
    result = run_cli(tmp_path, "-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=10",
                     "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
                     *QUICK, "seed=0,1", timeout=500)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_sweep(tmp_path, jobs=2)
    # the jobs really went through SLURM: submitit named their folders after SLURM job ids
    job_dirs = [p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.is_dir()]
    assert any("_" in name and name.split("_")[0].isdigit() for name in job_dirs), job_dirs
    print(f"SLURM launcher, 2-job sweep: {elapsed:.1f} s")
