"""Write docs/CLI.md, the command line's reference, from benchmark.py's own argparse parsers.

    python docs/make_cli.py          # rewrite docs/CLI.md
    python docs/make_cli.py --check  # exit 1 if docs/CLI.md is stale (tests/test_cli_doc.py does this)

Each option's text is its ``--help`` text, verbatim: the reference and ``--help`` cannot disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "CLI.md"


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser: "" is the benchmark itself (no subcommand)."""
    sys.path.insert(0, str(ROOT))
    from textbench import benchmark

    return {name: build() for name, build in benchmark.PARSERS.items()}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"`{name}`" for name in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices:
        return f"{names} `{'{' + ','.join(map(str, action.choices)) + '}'}`"
    metavar = action.metavar or action.dest.upper()
    return f"{names} `{metavar}{' ...' if action.nargs in ('+', '*') else ''}`"


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def render() -> str:
    lines = [
        "# Command-line reference",
        "",
        "Generated from the parsers in `benchmark.py` by `python docs/make_cli.py`; each option's text is "
        "its `--help` text. A test fails when this file is stale.",
        "",
    ]
    for name, parser in parsers().items():
        command = f"python benchmark.py {name}".strip()
        lines += [
            f"## `{command}`",
            "",
            _cell(parser.description or ""),
            "",
            "| option | meaning |",
            "|---|---|",
        ]
        formatter = parser._get_formatter()
        for action in options(parser):
            required = " (required)" if action.required else ""
            text = formatter._expand_help(action) if action.help else ""  # as --help prints it (%% -> %)
            lines.append(f"| {_option(action)} | {_cell(text)}{required} |")
        groups = [g for g in parser._mutually_exclusive_groups if g.required]
        for group in groups:
            names = " or ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
            lines += ["", f"One of {names} is required."]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python docs/make_cli.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
