"""Per-module mutation-testing counts from mutmut's results (not a test module).

    mutmut run "core.models*"        # one module (or plain `mutmut run`: all five, an hour or more)
    python tests/mutation_report.py  # killed / survived / not checked per module, survivors named

The modules and the tests that guard them are configured in pyproject.toml ([tool.mutmut]);
each mutant runs only the tests that reach its function. Survivors are listed so that equivalent
mutants can be named in the README's table; ``mutmut show NAME`` prints one's diff.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path.cwd()  # the repository root, where mutmut keeps mutants/
MODULES = ("core/data.py", "core/models.py", "search/objective.py", "search/runner.py", "reports/stats.py")
# mutmut's exit codes (mutmut/stats.py): 1 and 3 killed, 0 survived, 36/24/-24/152/255 timeout (a kill).
KILLED, SURVIVED, NO_TESTS, TIMEOUT = {1, 3}, {0}, {5, 33}, {36, 24, -24, 152, 255}


def counts(meta: Path) -> tuple[Counter, list[str]]:
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    out, survivors = Counter(), []
    for name, code in codes.items():
        if code is None:
            out["not checked"] += 1
        elif code in KILLED or code in TIMEOUT:
            out["killed"] += 1
        elif code in SURVIVED:
            out["survived"] += 1
            survivors.append(name)
        elif code in NO_TESTS:
            out["no tests"] += 1
        else:
            out["other"] += 1
    return out, survivors


def main() -> int:
    print("| module | mutants | killed | survived | no tests | not checked | killed of checked |")
    print("|---|---|---|---|---|---|---|")
    listed = []
    for module in MODULES:
        meta = ROOT / "mutants" / f"{module}.meta"
        if not meta.exists():
            print(f"| {module} | not generated | | | | | |")
            continue
        c, survivors = counts(meta)
        checked = c["killed"] + c["survived"] + c["no tests"]
        share = f"{c['killed'] / checked:.0%}" if checked else "n/a"
        print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['no tests']} | "
              f"{c['not checked']} | {share} |")
        listed += survivors
    if listed:
        print("\nsurvivors (mutmut show NAME):")
        print("\n".join(f"  {name}" for name in listed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
