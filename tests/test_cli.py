import json
import subprocess
import sys

import pytest
from conftest import REPO, SHIPPED_PIXEL_INDEX

from memdemo.cli import main


@pytest.mark.slow
def test_help_lists_the_subcommands():
    result = subprocess.run([sys.executable, "-m", "memdemo", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("data", "index"):
        assert command in result.stdout


def test_export_build_and_query(tmp_path, capsys, emojimem):
    train_id = emojimem.ids("train")[3]
    assert main(["data", "export", str(train_id), "--out", str(tmp_path)]) == 0
    assert main(["index", "build", "--images", "assets/emojimem", "--features", "pixel", "--split", "holdout",
                 "--out", str(tmp_path / "idx")]) == 0  # fmt: skip
    image = str(tmp_path / f"{train_id}.png")
    assert main(["index", "query", "--index", str(SHIPPED_PIXEL_INDEX), "--image", image]) == 0
    lines = capsys.readouterr().out.splitlines()
    first_neighbour = lines[[line.startswith("rank") for line in lines].index(True) + 1]
    assert first_neighbour.split()[1] == str(train_id)
    assert any(line.startswith("nL2 = 0.000") for line in lines)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["index", "query", "--index", "nowhere", "--image", "x.png"], "no complete index at nowhere"),
        (["index", "query", "--index", str(SHIPPED_PIXEL_INDEX), "--image", "requirements.txt"], "is not an image"),
        (["index", "query", "--index", str(SHIPPED_PIXEL_INDEX), "--image", "missing.png"], "does not exist"),
        (["index", "build", "--images", "nowhere", "--features", "pixel", "--out", "x"], "build-emojimem"),
        (["data", "export", "99999", "--out", "unused"], "out of range"),
        (["bench", "--model", "emojimem-random", "--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    argv = [str(tmp_path / a) if a in ("x", "unused") else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_feature_is_rejected_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["index", "build", "--images", "assets/emojimem", "--features", "sscd", "--out", "x"])
    assert "choose from 'copydet', 'copydet-guide', 'pixel'" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_writes_images_trace_and_plot(tmp_path, capsys):
    argv = ["generate", "--model", "emojimem-random", "--prompt", "red apple", "--steps", "4", "--method", "og-dtp"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"baseline.png", "image.png", "trace.json", "plot.png"}
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert trace["run"]["method"] == "og-dtp" and trace["run"]["params"]["pre_scale"] == -7.5
    assert len(trace["trajectories"]["mitigated"]["steps"]) == 4
    assert trace["trajectories"]["baseline"]["final"]["nearest_caption"]


def test_generate_names_an_option_that_another_option_switches_off(tmp_path, capsys):
    argv = ["generate", "--model", "emojimem-random", "--prompt", "red apple", "--steps", "2", "--method", "amg"]
    assert main([*argv, "--terms", "spe,dup", "--c3", "50", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "warning: c3 is ignored: G_sim is not among the AMG terms; add sim to the terms" in out
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "is ignored" not in capsys.readouterr().out


def test_generate_rejects_an_unknown_method(capsys):
    assert main(["generate", "--prompt", "x", "--method", "negative-prompt", "--out", "unused"]) == 2
    assert "unknown method 'negative-prompt'; choose one of baseline: plain classifier-free guidance" in (
        capsys.readouterr().err
    )
