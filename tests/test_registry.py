"""The method registry: one spec and one `register` line put a method on every surface, with the same checks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from memdemo.backends.emojimem import EmojiMemBackend
from memdemo.cli import build_parser, main
from memdemo.evaluation.methods import method_names, parse_methods
from memdemo.guidance import METHODS, VARIANTS, Guided, MethodSpec, Param, ParameterError, register
from memdemo.guidance.cfg import classifier_free_guidance
from memdemo.sampling import Generation, Request
from memdemo.ui.layout import compare_variants
from memdemo.ui.settings import SettingsError, build_settings, control_keys


@dataclass
class ToyPolicy:
    """CFG at a fraction of s0."""

    factor: float
    name: str = "toy"

    def params(self) -> dict:
        return {"factor": self.factor}

    def guide(self, step) -> Guided:
        scale = self.factor * step.cfg_scale
        return Guided(classifier_free_guidance(step.eps_uncond, step.eps_cond, scale), scales={"cfg": scale})


TOY = MethodSpec(
    "toy",
    "Toy method",
    "CFG at a fraction of s0",
    "test only",
    (Param("factor", float, 0.5, "toy factor", "the fraction of s0", 0, 1),),
    lambda params, context: ToyPolicy(params["factor"]),
)


@pytest.fixture
def toy():
    register(TOY)  # the one line a new method needs
    yield TOY
    METHODS.pop("toy")
    VARIANTS.pop("toy")


def _help(command: str) -> str:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    return " ".join(subparsers.choices[command].format_help().split())


def test_one_registration_puts_a_method_on_every_surface(toy):
    assert "toy: CFG at a fraction of s0" in _help("generate") and "--factor" in _help("generate")
    assert "toy.factor" in control_keys()
    settings, _ = build_settings({"method": "toy", "toy.factor": 0.25})
    assert settings.params == {"factor": 0.25}
    assert parse_methods("amg-main,toy") == ["amg-main", "toy"] and "toy" in method_names()
    assert "toy" in _help("evaluate") and "toy" in compare_variants()
    generation = Generation(EmojiMemBackend.random(), Request("cat", steps=2), settings.policy(None), method="toy")
    trace = generation.run()
    assert trace.run.method == "toy" and trace.run.params["factor"] == 0.25
    assert [step.scales["cfg"] for step in trace.mitigated.steps] == [1.875, 1.875]  # 0.25 · 7.5


def test_a_parameter_out_of_range_gets_the_same_message_on_cli_and_ui(tmp_path, capsys):
    message = "c3 (Eq. 17) must be between 0 and 100000, got -5"
    assert main(["generate", "--prompt", "x", "--c3", "-5", "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(SettingsError) as raised:
        build_settings({"method": "amg", "amg.c3": -5})
    assert message in str(raised.value)
    assert not any(tmp_path.iterdir())  # refused before any sampling


def test_an_unknown_method_lists_the_registry_on_every_surface(capsys):
    prefix = "unknown method 'negative-prompt'; choose one of baseline"
    assert main(["generate", "--prompt", "x", "--method", "negative-prompt", "--out", "unused"]) == 2
    assert prefix in capsys.readouterr().err
    with pytest.raises(SettingsError, match=prefix):
        build_settings({"method": "negative-prompt"})
    with pytest.raises(ParameterError, match=prefix):
        parse_methods("negative-prompt")


def test_an_option_of_another_method_is_refused_with_the_fix(capsys):
    assert main(["generate", "--prompt", "x", "--method", "dtp", "--c1", "3", "--out", "unused"]) == 2
    assert "--c1 does not apply to --method dtp; drop it, or use --method amg" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (Param("n", int, 1, "n", "", 0, 10), 2.5, "n must be a whole number between 0 and 10"),
        (Param("x", float, 1.0, "x", "", 0, 1), float("inf"), "x must be between 0 and 1"),
        (Param("x", float, 1.0, "x", "", 0, 1), True, "x must be a number"),
        (Param("b", bool, False, "b", ""), 5, "b must be true or false"),
        (Param("s", str, "a", "s", "", choices=("a", "b")), "c", "s must be one of a, b"),
        (Param("t", tuple, ("a",), "t", "", choices=("a", "b")), [], r"t must be a subset of a, b \(not empty\)"),
    ],
)
def test_parameter_checks_name_the_range(param, value, message):
    with pytest.raises(ParameterError, match=message):
        param.check(value)


def test_parameter_checks_coerce_what_they_accept():
    assert Param("n", int, 1, "n", "", 0, 10).check(3.0) == 3
    assert Param("t", tuple, ("a",), "t", "", choices=("a", "b")).check("b, a") == ("a", "b")
    assert Param("x", float, None, "x", "", 0, 1).check(None) is None
