import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, SHIPPED_PIXEL_INDEX

from memdemo.backends import load_backend
from memdemo.cli import main
from memdemo.evaluation import SAMPLES_FILE, load_prompts, run_evaluation, summarize, write_summary
from memdemo.evaluation.detection import detection_table
from memdemo.evaluation.runner import Settings, merge_shards, read_rows, row_key
from memdemo.evaluation.summary import load_samples, plain_table, takeaway
from memdemo.guidance import SimilarityMonitor
from memdemo.reference.index import ReferenceIndex


def _row(method, nl2, own, seconds, copydet=None, copydet_own=None, prompt_set="duplicated", fired=(), speckle=None):
    return {"model": "m", "prompt_set": prompt_set, "method": method, "pixel_similarity": 1 - nl2 / 2, "nl2": nl2,
            "own": own, "seconds": seconds, "copydet_similarity": copydet, "copydet_own": copydet_own,
            "fired_steps": list(fired), "speckle": speckle}  # fmt: skip


def test_summary_matches_hand_computed_numbers(tmp_path):
    rows = [
        _row("baseline", 0.2, True, 1.0, 0.95, True, speckle=0.01),
        _row("baseline", 1.0, True, 2.0, 0.85, True, speckle=0.04),
        _row("baseline", 1.39, False, 3.0, 0.45, False, speckle=0.02),
        _row("baseline", 1.8, None, 6.0, 0.3, None),
        _row("amg-main", 1.6, False, 4.0, fired=(0, 1, 2)),
        _row("amg-main", 1.5, False, 2.0, prompt_set="holdout", fired=(7,)),
        _row("amg-main", 1.7, False, 2.0, prompt_set="holdout"),
    ]
    frechet = {("m", "duplicated", "baseline"): 2.5}
    table = {(r["prompt_set"], r["method"]): r for r in summarize(rows, frechet, threshold=0.8)}
    base = table["duplicated", "baseline"]
    assert base["n"] == 4
    # sorted copydet [0.3, 0.45, 0.85, 0.95]: 95th percentile at position 0.95·3 = 2.85 → 0.85 + 0.85·0.1
    assert base["copydet_p95"] == pytest.approx(0.935) and base["copydet_max"] == 0.95
    assert base["copy_share_copydet"] == pytest.approx(2 / 4) and base["share_copydet_gt_0.5"] == pytest.approx(2 / 4)
    assert base["own_nn_copydet"] == pytest.approx(2 / 3)
    # sorted nL2 [0.2, 1.0, 1.39, 1.8]: 5th percentile at position 0.15 → 0.2 + 0.15·0.8
    assert base["nl2_p5"] == pytest.approx(0.32) and base["nl2_min"] == 0.2
    assert base["copy_share_nl2_lt_1.4"] == pytest.approx(3 / 4)  # 0.2, 1.0, 1.39
    assert base["share_nl2_lt_1.6"] == pytest.approx(3 / 4)  # 1.8 is not
    assert base["own_nn_pixel"] == pytest.approx(2 / 3)
    assert base["frechet_copydet"] == 2.5 and base["mean_seconds"] == pytest.approx(3.0)
    assert base["speckle_median"] == pytest.approx(0.02)  # median of [0.01, 0.02, 0.04]; the missing one is skipped
    amg = table["duplicated", "amg-main"]
    assert (amg["n"], amg["copy_share_nl2_lt_1.4"], amg["share_nl2_lt_1.6"], amg["own_nn_pixel"]) == (1, 0.0, 0.0, 0.0)
    assert amg["copydet_p95"] is None and amg["copy_share_copydet"] is None and amg["frechet_copydet"] is None
    assert amg["speckle_median"] is None
    assert base["mean_steps_guided"] == 0 and amg["mean_steps_guided"] == 3
    holdout = table["holdout", "amg-main"]
    assert (holdout["n"], holdout["mean_steps_guided"]) == (2, 0.5)

    lines = [json.dumps({**row, "prompt": f"p{i}"}) for i, row in enumerate(rows)]  # distinct samples
    (tmp_path / SAMPLES_FILE).write_text("\n".join(lines) + "\n{torn", encoding="utf-8")
    write_summary(tmp_path)
    csv_lines = (tmp_path / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_lines) == 4 and csv_lines[1].startswith("m,duplicated,baseline,4,")
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    expected = (
        "| m | duplicated | baseline | 4 | 0.0 | – | 0.935 | 0.950 | – | 0.500 | 0.667 | – | 0.320 | 0.200 | 0.750 |"
    )
    assert expected in markdown


def test_copies_of_another_emoji_need_tau_and_a_foreign_nearest():
    rows = [
        _row("stp", 1.0, False, 1.0, 0.9, False),  # above τ, nearest is another emoji: counts
        _row("stp", 1.0, True, 1.0, 0.95, True),  # a copy of its own image: does not
        _row("stp", 1.0, False, 1.0, 0.5, False),  # another emoji's nearest, but below τ: does not
        _row("stp", 1.0, None, 1.0, 0.99, None),  # no own image (holdout): left out
    ]
    (row,) = summarize(rows, threshold=0.8)
    assert row["copy_share_other"] == pytest.approx(1 / 3)
    (row,) = summarize(rows)
    assert row["copy_share_other"] is None  # no τ, no verdict


def test_detection_table_by_hand(tmp_path):
    rows = [
        {**_row("baseline", 1.0, True, 1.0), "norm_first": first, "norm_mean": first, "prompt_set": kind}
        for first, kind in [(3.0, "duplicated"), (2.0, "duplicated"), (2.5, "holdout"), (1.0, "holdout")]
    ]
    table = {row["signal"]: row for row in detection_table(rows)}
    # pairs (pos > neg): 3>2.5, 3>1, 2>1, 2<2.5 → 3/4; the top score is a positive, so TPR 0.5 at FPR 0
    assert table["norm_first"]["auc"] == pytest.approx(0.75)
    assert table["norm_first"]["tpr_at_1pct_fpr"] == pytest.approx(0.5)
    assert table["pixel_similarity"]["auc"] == pytest.approx(0.5)  # all equal: ties count half
    assert "copydet_similarity" not in table  # no copydet scores in these rows


@pytest.mark.slow
def test_run_records_baseline_once_and_resumes(tmp_path):
    backend = load_backend("emojimem-random", "cpu")
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(SHIPPED_PIXEL_INDEX))
    prompts = load_prompts("duplicated", limit=2)
    settings = Settings(steps=2)
    args = (backend, monitor, prompts, "duplicated", range(1), ["amg-main", "dtp"], tmp_path, settings, False)
    assert run_evaluation(*args) == 2 * 3  # per prompt: baseline once, amg-main, dtp
    rows = read_rows(tmp_path / SAMPLES_FILE)
    assert [r["method"] for r in rows[:3]] == ["baseline", "amg-main", "dtp"]
    assert {r["prompt"] for r in rows} == {p.text for p in prompts}
    first = rows[0]
    assert first["own_id"] == prompts[0].own_id and first["own"] == (first["nearest_id"] == prompts[0].own_id)
    assert first["fired_steps"] == [] and first["norm_first"] > 0 and first["seconds"] > 0
    assert run_evaluation(*args) == 0
    assert len(read_rows(tmp_path / SAMPLES_FILE)) == 6


def test_prompt_sets_are_deterministic(emojimem, tmp_path):
    duplicated = load_prompts("duplicated")
    assert len(duplicated) == sum(r.split == "train" and r.copies > 1 for r in emojimem.records)
    assert load_prompts("holdout", limit=3) == load_prompts("holdout")[:3]
    assert all(emojimem.records[p.own_id].copies == 1 for p in load_prompts("single", limit=5))
    file = tmp_path / "prompts.txt"
    file.write_text(f"{emojimem.records[0].caption}\n\na purple cat\n", encoding="utf-8")
    assert [p.own_id for p in load_prompts(str(file))] == [0, None]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "amg-main,amg-foo"], "unknown method 'amg-foo'; choose one of baseline, amg, amg-main"),
        (["--prompts", "missing-prompts.txt"], "no such file, and not a prompt set (duplicated, single, holdout)"),
        (["--summarize-only"], "holds no samples"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, argv, message):
    assert main(["evaluate", "--model", "emojimem-random", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def _evaluate_args(out, *extra):
    return ["evaluate", "--model", "emojimem-random", "--prompts", "duplicated", "--limit", "3", "--seeds", "1",
            "--steps", "2", "--methods", "dtp", "--score-index", "none", "--quiet", "--out", str(out),
            *extra]  # fmt: skip


@pytest.mark.slow
def test_accelerate_launch_shards_prompts_and_merges(tmp_path):
    """Two CPU processes under `accelerate launch` split the prompts and rank 0 merges: same rows as one process."""
    assert main(_evaluate_args(tmp_path / "single")) == 0
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "memdemo"]  # fmt: skip
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([*launch, *_evaluate_args(tmp_path / "sharded")], env=environment, capture_output=True,
                            text=True, timeout=300, cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shard 1/2" in result.stdout and "shard 2/2" in result.stdout and "merged 6 rows" in result.stdout
    assert not list((tmp_path / "sharded").glob("samples.rank*"))

    def by_key(folder):
        return {row_key(r): (r["similarity"], r["norm_first"]) for r in read_rows(folder / SAMPLES_FILE)}

    single, sharded = by_key(tmp_path / "single"), by_key(tmp_path / "sharded")
    assert sharded.keys() == single.keys() and len(single) == 6
    assert all(sharded[key] == pytest.approx(single[key], rel=1e-4) for key in single)
    assert (tmp_path / "sharded" / "results.md").is_file()


@pytest.mark.slow
def test_a_second_shard_layout_resumes_from_merged_and_unmerged_rows(tmp_path):
    """Rows in samples.jsonl and in a shard file left by an interrupted run are not sampled again."""
    assert main(_evaluate_args(tmp_path)) == 0
    rows = read_rows(tmp_path / SAMPLES_FILE)
    (tmp_path / SAMPLES_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows[:4]), encoding="utf-8")
    (tmp_path / "samples.rank1-of-2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    assert run_evaluation(*_run_args(tmp_path)) == 0
    assert merge_shards(tmp_path) == 2 and len(read_rows(tmp_path / SAMPLES_FILE)) == 6


def _run_args(out):
    backend = load_backend("emojimem-random", "cpu")
    monitor = SimilarityMonitor(backend, ReferenceIndex.load(SHIPPED_PIXEL_INDEX))
    prompts = load_prompts("duplicated", limit=3)
    return backend, monitor, prompts, "duplicated", range(1), ["dtp"], out, Settings(steps=2), False


@pytest.mark.slow
def test_bench_reports_every_method_with_a_ratio_to_cfg(tmp_path, capsys):
    out = tmp_path / "speed.md"
    argv = ["bench", "--model", "emojimem-random", "--methods", "amg-main,dtp", "--steps", "2", "--rounds", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    for name in ("plain CFG, one trajectory", "| baseline |", "| amg-main |", "| dtp |", "gate open at every step"):
        assert name in text
    rows = {
        cells[0]: cells[1:]
        for cells in (line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("| "))
    }
    baseline_ms = float(rows["baseline"][0])
    for name in ("amg-main", "dtp"):
        ms, ratio = float(rows[name][0]), float(rows[name][1].rstrip("×"))
        assert ratio == pytest.approx(ms / baseline_ms, abs=0.05)  # ms are rounded to whole numbers


def test_the_models_tab_reads_plain_names_and_a_takeaway_from_the_numbers():
    rows = {
        "m": [
            {"prompt_set": "duplicated", "method": "baseline", "n": 400, "copy_share_copydet": 0.5},
            {"prompt_set": "duplicated", "method": "amg-main", "n": 400, "copy_share_copydet": 0.02},
        ]
    }
    assert takeaway(rows) == "m: the detector calls 50% of duplicated-caption images copies, 2% with AMG main."
    table = plain_table(rows["m"])
    assert table[0].startswith("| captions | method | images | copies |") and "| 400 | 0.50 |" in table[2]


def test_samples_in_two_folders_count_once(tmp_path):
    shared = {"model": "m", "prompt_set": "duplicated", "prompt": "p", "seed": 0, "method": "baseline", "steps": 50,
              "cfg": 7.5, "scheduler": "ddim", "image": "images/a.png"}  # fmt: skip
    for name, extra in (("first", "amg-main"), ("second", "stp")):
        (tmp_path / name).mkdir()
        rows = [shared, {**shared, "method": extra, "image": "images/b.png"}]
        (tmp_path / name / SAMPLES_FILE).write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    rows = load_samples([tmp_path / "first", tmp_path / "second"])
    assert sorted(r["method"] for r in rows) == ["amg-main", "baseline", "stp"]
    assert next(r for r in rows if r["method"] == "baseline")["image_path"] == tmp_path / "first" / "images/a.png"
