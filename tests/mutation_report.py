"""Per-module mutation-testing counts from mutmut's results (not a test module).

    mutmut run "core.models*"                        # one module (plain `mutmut run`: all five, hours)
    python tests/mutation_report.py                  # killed / survived / not checked per module
    python tests/mutation_report.py --sample 40      # a seeded random sample of 40 mutants per module:
    mutmut run $(cat mutants/sample.txt)             #   run just those (results reset first)
    python tests/mutation_report.py                  #   and the sample's own table is printed too

A whole run is hours on 2 cores (3,500 mutants; the objective's and runner's tests train real tiny
models), so the kill rate is measured on a random sample, which estimates it without the bias of
mutmut's order (it runs a module's functions top to bottom). The modules and the tests that guard
them are configured in pyproject.toml ([tool.mutmut]). Survivors are listed so that equivalent
mutants can be named in the README's table; ``mutmut show NAME`` prints one's diff.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path.cwd()  # the repository root, where mutmut keeps mutants/
MODULES = ("core/data.py", "core/models.py", "search/objective.py", "search/runner.py", "reports/stats.py")
SAMPLE = ROOT / "mutants" / "sample.txt"
# mutmut's exit codes (mutmut/stats.py): 1 and 3 killed, 0 survived, 36/24/-24/152/255 timeout (a kill).
KILLED, SURVIVED, NO_TESTS, TIMEOUT = {1, 3}, {0}, {5, 33}, {36, 24, -24, 152, 255}


def meta_path(module: str) -> Path:
    return ROOT / "mutants" / f"{module}.meta"


def outcome(code) -> str:
    if code is None:
        return "not checked"
    if code in KILLED or code in TIMEOUT:
        return "killed"
    if code in SURVIVED:
        return "survived"
    return "no tests" if code in NO_TESTS else "other"


def table(codes_by_module: dict[str, dict], title: str) -> list[str]:
    lines = [
        title,
        "| module | mutants | killed | survived | no tests | not checked | killed of checked |",
        "|---|---|---|---|---|---|---|",
    ]
    survivors = []
    for module, codes in codes_by_module.items():
        c = Counter(outcome(code) for code in codes.values())
        checked = c["killed"] + c["survived"] + c["no tests"]
        share = f"{c['killed'] / checked:.0%}" if checked else "n/a"
        lines.append(
            f"| {module} | {len(codes)} | {c['killed']} | {c['survived']} | {c['no tests']} | "
            f"{c['not checked']} | {share} |"
        )
        survivors += [name for name, code in codes.items() if outcome(code) == "survived"]
    if survivors:
        lines += ["", "survivors (mutmut show NAME):", *(f"  {name}" for name in survivors)]
    return lines


def draw_sample(k: int, seed: int) -> list[str]:
    """k mutants per module, seeded; their results are reset so that `mutmut run NAMES` tests them anew."""
    names = []
    for module in MODULES:
        meta = json.loads(meta_path(module).read_text())
        keys = sorted(meta["exit_code_by_key"])
        picked = random.Random(f"{seed}:{module}").sample(keys, min(k, len(keys)))
        for key in picked:
            meta["exit_code_by_key"][key] = None
        meta_path(module).write_text(json.dumps(meta))
        names += picked
    SAMPLE.write_text("\n".join(names) + "\n")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sample", type=int, help="draw this many mutants per module into mutants/sample.txt"
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    missing = [m for m in MODULES if not meta_path(m).exists()]
    if missing:
        sys.exit(
            f"no mutmut results for {', '.join(missing)}: run `mutmut run` first (it generates mutants/)"
        )
    if args.sample:
        names = draw_sample(args.sample, args.seed)
        print(f"{len(names)} mutants in {SAMPLE}: now run  mutmut run $(cat {SAMPLE.relative_to(ROOT)})")
        return 0
    codes = {m: json.loads(meta_path(m).read_text())["exit_code_by_key"] for m in MODULES}
    print("\n".join(table(codes, "All mutants:")))
    if SAMPLE.exists():
        wanted = set(SAMPLE.read_text().split())
        sampled = {m: {k: v for k, v in c.items() if k in wanted} for m, c in codes.items()}
        print()
        print("\n".join(table(sampled, "The random sample (mutants/sample.txt):")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
