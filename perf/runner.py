"""The shared runner: finds the measurements (every module of this package with ``KEY`` and
``measure(profile, work) -> rows``), runs the chosen ones, prints the table, writes the JSON.

A module may also define ``CHILD`` (a name starting with ``_``) and ``child(argv)``: the entry
point of a child process it starts as ``python -m perf CHILD ...``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import perf
from perf.common import PROFILES, RESULTS, data_root, environment, load_average, table


def measurements() -> dict:
    """KEY -> module, in KEY order."""
    found = {}
    for info in pkgutil.iter_modules(perf.__path__):
        module = importlib.import_module(f"perf.{info.name}")
        if hasattr(module, "KEY") and hasattr(module, "measure"):
            found[module.KEY] = module
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    found = measurements()
    children = {m.CHILD: m.child for m in found.values() if hasattr(m, "CHILD")}
    if argv[:1] and argv[0] in children:
        return children[argv[0]](argv[1:])
    lines = "\n".join(f"  {key}  {(m.__doc__ or '').split(chr(10))[0]}" for key, m in found.items())
    parser = argparse.ArgumentParser(
        prog="python -m perf",
        description=f"{perf.__doc__}\nmeasurements:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small caps: finishes in a few minutes")
    parser.add_argument("--only", default=",".join(found), help="comma list of measurements (default: all)")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"), help="JSON results file")
    parser.add_argument(
        "--threads", default=None, help="torch threads for (a), comma list (default: quick 1; full 1,2)"
    )
    parser.add_argument(
        "--work-dir",
        default=None,
        help="scratch folder (default: a temporary one, removed); a kept one lets a rerun "
        "resume the CLI studies of (b) instead of starting them again",
    )
    args = parser.parse_args(argv)
    chosen = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in found]
    if unknown:
        parser.error(f"unknown measurement {unknown[0]!r}: choose from {', '.join(found)}")
    data_root()
    profile = PROFILES["quick" if args.quick else "full"]
    if args.threads:
        profile.threads = tuple(int(t) for t in args.threads.split(","))
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="textbench-perf-"))
    import datasets
    import transformers

    logging.basicConfig(level=logging.WARNING)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    results = {
        "profile": asdict(profile),
        "environment": environment(),
        "targets": {key: getattr(found[key], "TARGET", "") for key in chosen},
        "rows": [],
        "seconds": {},
    }
    try:
        for key in chosen:
            module = found[key]
            print(f"[{key}] {(module.__doc__ or '').splitlines()[0]}", flush=True)
            start = time.perf_counter()
            results["rows"].extend(module.measure(profile, work))
            results["seconds"][key] = round(time.perf_counter() - start, 1)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
        results["environment"]["load_average_1m_end"] = load_average()
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=1, default=str))
    print()
    print(table(results["rows"]))
    print(f"\n{profile.name} mode; results in {args.output}")
    return 0
