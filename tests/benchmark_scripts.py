"""Load a script from ``benchmarks/`` as a module, so tests can reach its functions (the scripts are not
part of the installed package)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a fresh module named ``NAME_bench`` (registered in ``sys.modules``:
    dataclasses look their module up there); skips the test where the checkout has no benchmarks/."""
    script = BENCHMARKS / f"{name}.py"
    if not script.exists():
        pytest.skip("benchmarks/ is not in this checkout")
    module_name = f"{name}_bench"
    spec = importlib.util.spec_from_file_location(module_name, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
