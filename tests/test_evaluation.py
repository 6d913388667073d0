import json

import pytest
from conftest import SHIPPED_PIXEL_INDEX

from memdemo.backends import load_backend
from memdemo.cli import main
from memdemo.evaluation import SAMPLES_FILE, load_prompts, run_evaluation, summarize, write_summary
from memdemo.evaluation.runner import Settings, read_rows
from memdemo.guidance import SimilarityMonitor
from memdemo.reference.index import ReferenceIndex


def _row(method, similarity, nl2, own, seconds, prompt_set="duplicated"):
    return {"model": "m", "prompt_set": prompt_set, "method": method, "similarity": similarity, "nl2": nl2,
            "own": own, "seconds": seconds}  # fmt: skip


def test_summary_matches_hand_computed_numbers(tmp_path):
    rows = [
        _row("baseline", 0.9, 0.2, True, 1.0),
        _row("baseline", 0.5, 1.0, True, 2.0),
        _row("baseline", 0.3, 1.39, False, 3.0),
        _row("baseline", 0.1, 1.8, None, 6.0),
        _row("amg-main", 0.2, 1.6, False, 4.0),
        _row("amg-main", 0.25, 1.5, False, 2.0, prompt_set="holdout"),
    ]
    table = {(r["prompt_set"], r["method"]): r for r in summarize(rows)}
    base = table["duplicated", "baseline"]
    assert base["n"] == 4
    # p95 by linear interpolation of sorted σ [0.1, 0.3, 0.5, 0.9]: position 0.95·3 = 2.85 → 0.5 + 0.85·0.4
    assert base["p95_similarity"] == pytest.approx(0.84)
    assert base["max_similarity"] == 0.9
    assert base["copy_share_nl2_lt_1.4"] == pytest.approx(3 / 4)  # 0.2, 1.0, 1.39
    assert base["share_nl2_lt_1.0"] == pytest.approx(1 / 4)  # 1.0 itself is not < 1.0
    assert base["own_nn_rate"] == pytest.approx(2 / 3) and base["own_n"] == 3
    assert base["mean_seconds"] == pytest.approx(3.0)
    amg = table["duplicated", "amg-main"]
    assert (amg["n"], amg["copy_share_nl2_lt_1.4"], amg["own_nn_rate"]) == (1, 0.0, 0.0)
    assert table["holdout", "amg-main"]["n"] == 1

    (tmp_path / SAMPLES_FILE).write_text("\n".join(json.dumps(r) for r in rows) + "\n{torn", encoding="utf-8")
    write_summary(tmp_path)
    csv_lines = (tmp_path / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_lines) == 4 and csv_lines[1].startswith("m,duplicated,baseline,4,")
    assert "| m | duplicated | baseline | 4 | 0.840 | 0.900 | 0.750 | 0.250 | 0.667 | 3.00 |" in (
        tmp_path / "results.md"
    ).read_text(encoding="utf-8")


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
        (["--methods", "amg-main,amg-foo"], "unknown method(s) amg-foo; choose from baseline, amg-main"),
        (["--prompts", "missing-prompts.txt"], "no such file, and not a prompt set (duplicated, single, holdout)"),
        (["--summarize-only"], "holds no samples"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, argv, message):
    assert main(["evaluate", "--model", "emojimem-random", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
