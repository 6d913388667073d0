"""Fault injection on the CLI: every bad input ends with exit code 2 and one line that names the fix, before any
sampling, and the next normal command still works. Corrupt files are copies in a temporary folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from memdemo.cli import main

REPO = Path(__file__).resolve().parents[1]
GENERATE = ["generate", "--model", "emojimem-random", "--prompt", "x", "--steps", "1"]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seed", str(2**80)], "the seed must be between 0 and"),
        (["--cfg", "1e30"], "the CFG scale s0 must be between 0 and 100"),
        (["--c2", "nan"], r"c2 (Eq. 15) must be between 0 and 1000, got nan"),
        (["--threshold", "nan", "--schedule", "constant"], "λ (constant schedule) must be between -1 and 1, got nan"),
        (["--method", "stp", "--switch-t", "-5"], "switch t must be between 0 and 999, got -5"),
        (["--c1", "-1000"], "c1 (Eq. 13) must be between 0 and 1000"),
        (["--device", "bogus"], "is not a device; choose one of cpu"),
        (["--out", "/proc/nope/run"], "cannot write to --out /proc/nope/run"),
    ],
)
def test_generate_refuses_bad_input_with_one_line(tmp_path, capsys, extra, message):
    argv = [*GENERATE, "--out", str(tmp_path / "run"), *extra]
    code, err = _run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_generate_refuses_an_existing_file_as_output_before_sampling(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, err = _run([*GENERATE, "--out", str(target)], capsys)
    assert code == 2 and "is an existing file; pass a folder" in err and target.read_text() == "keep me"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_generate_names_the_available_devices_when_cuda_is_missing(tmp_path, capsys):
    code, err = _run([*GENERATE, "--out", str(tmp_path / "run"), "--device", "cuda"], capsys)
    assert code == 2 and "no such CUDA device here; available: cpu" in err


def test_other_commands_refuse_bad_numbers_and_paths(tmp_path, capsys):
    assert (
        _run(
            ["index", "query", "--index", str(REPO / "indexes" / "emojimem-pixel"), "--image", "x.png", "-k", "0"],
            capsys,
        )[1].count("-k must be at least 1")
        == 1
    )
    code, err = _run(["data", "export", "--out", "/proc/nope", "0"], capsys)
    assert code == 2 and "cannot write to --out /proc/nope" in err
    code, err = _run(["train", "--objective", "ddpm", "--batch-size", "0", "--out", str(tmp_path / "m")], capsys)
    assert code == 2 and "--batch-size must be at least 1, got 0" in err


def test_a_huge_query_image_is_refused_with_the_limit(tmp_path, capsys):
    huge = tmp_path / "huge.png"
    Image.new("1", (20_000, 20_000)).save(huge)
    index = REPO / "indexes" / "emojimem-pixel"
    code, err = _run(["index", "query", "--index", str(index), "--image", str(huge)], capsys)
    assert code == 2 and "limited to 16,000,000 pixels" in err


def test_corrupt_copies_of_the_data_give_clear_errors(tmp_path, capsys):
    index = tmp_path / "index"
    shutil.copytree(REPO / "indexes" / "emojimem-pixel", index)
    (index / "index.json").write_bytes(b"\xff\xfe garbage")
    png = tmp_path / "q.png"
    Image.new("RGB", (32, 32), "white").save(png)
    code, err = _run(["index", "query", "--index", str(index), "--image", str(png)], capsys)
    assert code == 2 and "malformed" in err and "rebuild it with" in err
    dataset = tmp_path / "emojimem"
    shutil.copytree(REPO / "assets" / "emojimem", dataset)
    (dataset / "images.npy").write_bytes(b"")
    code, err = _run(["data", "export", "--dataset", str(dataset), "--out", str(tmp_path / "x"), "0"], capsys)
    assert code == 2 and "is not a readable NumPy array" in err
    shutil.copy(REPO / "assets" / "emojimem" / "images.npy", dataset / "images.npy")
    (dataset / "metadata.jsonl").write_bytes(b"\xff\xfe garbage")
    code, err = _run(["data", "export", "--dataset", str(dataset), "--out", str(tmp_path / "x"), "0"], capsys)
    assert code == 2 and "metadata.jsonl is malformed" in err
    # and the next normal command works
    code, _ = _run(["data", "export", "--out", str(tmp_path / "ok"), "0"], capsys)
    assert code == 0 and (tmp_path / "ok" / "0.png").is_file()


@pytest.mark.slow
def test_the_app_with_an_unknown_model_exits_2_with_one_line():
    result = subprocess.run(
        [sys.executable, "app.py", "--model", "bogus"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "unknown model 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr
