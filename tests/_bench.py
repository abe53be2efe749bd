"""Loading a benchmarks/ script as a module in the tests (the scripts are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported under the module name ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def part(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` that other benchmark scripts import by its own name (the
    ``campaign_*.py`` parts): imported as ``name``, with benchmarks/ on ``sys.path``, so the tests hold
    the very module the scripts use (a patch of it is seen by them)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module(name)
