"""The benchmarks' builder of one network with each of Keras' APIs (``benchmarks/protocol.py``:
Sequential, functional, subclassed), for the tests that train or sample every form."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "benchmark_protocol", Path(__file__).resolve().parent.parent / "benchmarks" / "protocol.py")
protocol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protocol)

APIS, build = protocol.APIS, protocol.build
