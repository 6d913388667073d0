"""Every benchmark script imports against the current package, so an API change cannot silently break one."""

import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports_and_has_a_main(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"


def _judgement(similarity: float, nearest: int, own_similarity: float | None = None):
    from memdemo.ui.judge import Judgement

    return Judgement(similarity, 0.9, nearest, f"emoji {nearest}", 5, own_similarity)


def test_the_examples_showcase_needs_the_own_copy_removed():
    examples = importlib.import_module("benchmarks.examples")
    own_copy, other_copy, no_copy = _judgement(0.99, 5, 0.99), _judgement(0.95, 7, 0.2), _judgement(0.6, 7, 0.3)
    assert examples.is_showcase(own_copy, no_copy) and examples.is_showcase(own_copy, other_copy)
    assert not examples.is_showcase(own_copy, own_copy)  # the mitigation left the copy
    assert not examples.is_showcase(own_copy, _judgement(0.95, 7, 0.93))  # nearest another, still a copy of its own
    assert not examples.is_showcase(other_copy, no_copy)  # the baseline did not copy the prompt's own image
    assert examples.verdict(own_copy) == "copies its own training image (0.99)"
    assert examples.verdict(other_copy) == "another training emoji, “emoji 7” (0.95)"
    assert examples.verdict(no_copy) == "not a copy (0.60 to the nearest, “emoji 7”)"


def test_the_model_card_names_what_changed_at_a_resume():
    model_card = importlib.import_module("benchmarks.model_card")
    change = "caption_dropout: checkpoint 0.1, asked 0.2"
    changed = {"step": 9484, "at": "2026-12-02T03:51:15+00:00", "changed": [change]}
    assert model_card._resume_text(changed) == "step 9484 (2026-12-02T03:51; caption_dropout 0.1 → 0.2)"
    assert model_card._resume_text({"step": 4426, "at": "2026-12-01T20:27:41+00:00"}) == "step 4426 (2026-12-01T20:27)"


def test_the_ambient_sweep_judges_each_t_n_by_the_papers_claim():
    sweep = importlib.import_module("benchmarks.ambient_sweep")
    ddpm = {"copy_share_copydet": 0.9, "frechet_copydet": 0.1}
    fall, fd_ratio, met = sweep.against_ddpm({"copy_share_copydet": 0.2, "frechet_copydet": 0.105}, ddpm)
    assert fall == pytest.approx(4.5) and fd_ratio == pytest.approx(1.05) and met
    assert not sweep.against_ddpm({"copy_share_copydet": 0.5, "frechet_copydet": 0.1}, ddpm)[2]  # 1.8× fewer
    assert not sweep.against_ddpm({"copy_share_copydet": 0.1, "frechet_copydet": 0.12}, ddpm)[2]  # FD 20% worse
    assert sweep.against_ddpm({"copy_share_copydet": 0.0, "frechet_copydet": 0.1}, ddpm)[0] == float("inf")


def test_the_soak_takes_rss_growth_at_rest_as_the_trend_of_its_readings():
    rest_growth = importlib.import_module("benchmarks.soak").rest_growth
    assert rest_growth([(40, 900.0), (200, 903.0)]) == pytest.approx(3.0)  # two readings: their difference
    assert rest_growth([(40, 900.0), (80, 901.0), (120, 902.0), (160, 903.0), (200, 904.0)]) == pytest.approx(4.0)
    # one high reading at the end moves the trend less than the difference of the ends (+2.0 MB)
    assert rest_growth([(40, 100.0), (80, 104.0), (120, 100.0), (160, 104.0), (200, 102.0)]) == pytest.approx(1.6)
    assert rest_growth([(40, 910.0), (120, 905.0), (200, 900.0)]) == pytest.approx(-10.0)


def test_the_soak_states_how_far_its_trend_can_be_trusted():
    rest_growth_error = importlib.import_module("benchmarks.soak").rest_growth_error
    assert rest_growth_error([(40, 900.0), (200, 903.0)]) is None
    assert rest_growth_error([(40, 900.0), (120, 901.0), (200, 902.0)]) == pytest.approx(0.0)
    # residuals −1/3, 2/3, −1/3 about a flat line: s² = (6/9)/1, slope error √(s²/2) = √(1/3), over a span of 2
    assert rest_growth_error([(0, 0.0), (1, 1.0), (2, 0.0)]) == pytest.approx(2 * (1 / 3) ** 0.5)
