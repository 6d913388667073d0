"""memdemo finds its data through memdemo/paths.py, and an installed wheel runs from any folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from memdemo import paths
from memdemo.cli import main
from memdemo.errors import MemdemoError

MAX_WHEEL_MB = 60  # runtime assets and indexes (EmojiMem v1 and v2 while v2 replaces v1); no checkpoints or logs


def test_memdemo_home_without_data_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    with pytest.raises(MemdemoError, match=re.escape(f"{paths.ENV_VAR}={tmp_path} lacks them")):
        paths.assets_dir()
    assert paths.indexes_dir(check=False) == tmp_path / "indexes"


def test_memdemo_home_with_data_is_used(tmp_path, monkeypatch):
    (tmp_path / "assets").mkdir()
    (tmp_path / "indexes").mkdir()
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.assets_dir() == tmp_path / "assets"
    assert paths.indexes_dir() == tmp_path / "indexes"


def test_a_checkout_finds_its_own_data(monkeypatch):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    assert paths.data_root() == REPO
    assert paths.benchmarks_dir() == REPO / "benchmarks"


def test_generate_without_data_exits_2_naming_the_override(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    argv = ["generate", "--model", "emojimem-ddpm", "--prompt", "warning", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert paths.ENV_VAR in capsys.readouterr().err


def _run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_the_installed_wheel_generates_from_any_folder(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("copies the source tree with git ls-files")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", paths.ENV_VAR)}
    env["HF_HUB_OFFLINE"] = "1"
    # Build from a copy of what a clone holds (plus new, unignored files), so that no build/ or egg-info is left in
    # the checkout and no stale build/lib leaks into the wheel.
    files = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], REPO, env).split("\0")
    source = tmp_path / "source"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels]
    _run([*pip_wheel, "."], source, env)
    (wheel,) = wheels.glob("memdemo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "memdemo/_data/assets/emojimem-ddpm/unet.safetensors" in names
    assert "memdemo/_data/indexes/emojimem-copydet-guide/index.npz" in names
    data = [name for name in names if name.startswith("memdemo/_data/")]
    assert not [name for name in data if "/checkpoint/" in name or name.endswith((".png", "train_log.jsonl"))]
    assert wheel.stat().st_size < MAX_WHEEL_MB * 2**20

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], tmp_path, env)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], tmp_path, env)
    where = _run([python, "-c", "import memdemo, memdemo.paths as p; print(memdemo.__file__); print(p.data_root())"],
                 tmp_path, env).splitlines()  # fmt: skip
    assert all(Path(line).resolve().is_relative_to(venv.resolve()) for line in where), where

    out = tmp_path / "out"
    generate = [venv / "bin" / "memdemo", "generate", "--model", "emojimem-ddpm", "--prompt", "warning"]
    _run([*generate, "--steps", "2", "--out", out], tmp_path, env)
    assert (out / "image.png").is_file()
    assert (out / "trace.json").is_file()
