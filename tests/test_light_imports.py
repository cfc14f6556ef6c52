"""The modules that need no TensorFlow load none: importing TensorFlow (or Keras, or torch) costs
seconds, so the tracking, the report's readers and the NumPy-only strategies keep it out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "torch")


@pytest.mark.parametrize("module", [
    "al_experiments.tracking",
    "al_experiments.acquisition",
    "al_experiments.acquisition.batch.batch_bald",
    "al_experiments.acquisition.batch.badge",
    "al_experiments.acquisition.batch.coreset",
    "al_experiments.acquisition.batch.epig",
    "al_experiments.acquisition.batch.stochastic",
])
def test_module_imports_no_tensorflow(module):
    # A fresh interpreter each: a module imported earlier would hide what this one loads.
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]  # the timeout is a hang guard only
    assert out.stdout.strip() == "[]", (module, out.stdout)
