"""The benchmark's SOR export generator (bench/generate_sor_export.py), for tests that want
a realistic register. The script is no package: it is loaded by path, once."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).parents[2] / "bench" / "generate_sor_export.py"


@functools.cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sor_export", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
