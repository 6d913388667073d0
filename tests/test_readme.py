import re

from conftest import REPO


def _quickstart_commands() -> list[str]:
    quickstart = (REPO / "README.md").read_text().split("## Quickstart")[1].split("\n## ")[0]
    return re.findall(r"```bash\n(.+?)\n```", quickstart)


def test_readme_has_exactly_two_quickstart_commands():
    commands = _quickstart_commands()
    assert len(commands) == 2 and all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command():
    test_command = _quickstart_commands()[1]
    assert "pytest" in test_command
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_results_are_the_generated_tables():
    from benchmarks.model_card import RESULTS_END, RESULTS_START, results_markdown

    readme = (REPO / "README.md").read_text()
    block = readme.split(RESULTS_START)[1].split(RESULTS_END)[0].strip()
    assert block == results_markdown().strip(), "regenerate with `python -m benchmarks.model_card`"
