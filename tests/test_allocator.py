"""glibc malloc tuning (docs/operations.md): what is set, what the operator's environment overrides, and that app.py
sets it before torch and the models allocate."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from memdemo import allocator

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("environment", "calls"),
    [
        ({}, [(allocator.M_ARENA_MAX, 2), (allocator.M_MMAP_THRESHOLD, 131072)]),
        ({"MALLOC_ARENA_MAX": "4"}, [(allocator.M_MMAP_THRESHOLD, 131072)]),
        ({"MALLOC_MMAP_THRESHOLD_": "65536"}, [(allocator.M_ARENA_MAX, 2)]),
    ],
)
def test_malloc_is_tuned_unless_the_operator_set_it(monkeypatch, environment, calls):
    made = []
    monkeypatch.setattr(allocator, "glibc", lambda: SimpleNamespace(mallopt=lambda *call: made.append(call) or 1))
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    allocator.tune_malloc(2, 128 * 1024)
    assert made == calls


@pytest.mark.slow
def test_app_tunes_malloc_before_torch_is_imported():
    code = (
        "import sys, memdemo.allocator as a; seen = []; a.tune_malloc = lambda: seen.append('torch' in sys.modules); "
        "import app; print(seen)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "[False]"
