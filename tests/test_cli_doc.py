"""The README is the command line's reference: docs/CLI.md is generated from the parsers (every
option of every command, its --help text verbatim), and every option the README names exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from textbench import benchmark

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Options of other tools that the README shows in their own commands: (option, the tool's name on that line).
FOREIGN = {
    "--backend-store-uri": "mlflow ui",
    "--artifact-dir": "optuna-dashboard",
    "--quick": "perf/run.py",
    "--sample": "mutation_report.py",
}


def _make_cli():
    spec = importlib.util.spec_from_file_location("make_cli", ROOT / "docs" / "make_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options(make_cli) -> dict[str, set[str]]:
    return {
        name: {o for a in make_cli.options(p) for o in a.option_strings}
        for name, p in make_cli.parsers().items()
    }


def test_every_command_has_a_parser_in_the_reference():
    assert set(benchmark.PARSERS) == {"", *benchmark.COMMANDS}


def test_docs_cli_is_regenerated_from_the_parsers():
    make_cli = _make_cli()
    assert (ROOT / "docs" / "CLI.md").read_text() == make_cli.render(), "stale: run python docs/make_cli.py"


def test_every_option_is_in_its_commands_table_with_its_help_text():
    make_cli = _make_cli()
    sections = re.split(r"^## ", (ROOT / "docs" / "CLI.md").read_text(), flags=re.M)[1:]
    by_command = {s.split("`")[1].removeprefix("python benchmark.py").strip(): s for s in sections}
    assert set(by_command) == set(benchmark.PARSERS)
    for name, parser in make_cli.parsers().items():
        for action in make_cli.options(parser):
            help_text = " ".join(parser._get_formatter()._expand_help(action).split())
            row = next(
                (line for line in by_command[name].splitlines() if f"`{action.option_strings[-1]}`" in line),
                None,
            )
            assert row is not None, (name, action.option_strings)
            assert help_text.replace("|", "\\|") in row, (name, action.option_strings)


def test_every_option_the_readme_names_exists():
    known = set().union(*_options(_make_cli()).values()) | {"--help"}
    for option in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", README)):
        if option in FOREIGN:
            lines = [line for line in README.splitlines() if re.search(rf"(?<![\w-]){option}\b", line)]
            assert all(FOREIGN[option] in line for line in lines), (option, lines)
            continue
        assert option in known, f"README names {option}, which no command has"


def test_readme_points_to_the_reference():
    assert "[docs/CLI.md](docs/CLI.md)" in README
