"""textbench command line: which text-classifier family wins on this data, by how much, how sure.

    python benchmark.py --arch both --trials 50          # search, final evaluation, report
    python benchmark.py suite --datasets imdb,rt_polarity  # one benchmark per dataset + suite report
    python benchmark.py train --arch cnn                  # the course notes' single run
    python benchmark.py report --name imdb                # rebuild a report from storage
    python benchmark.py predict --name imdb --input reviews.csv --output labelled.csv
    python benchmark.py export --name imdb --to imdb-model  # folder for transformers.pipeline + model card
    python benchmark.py rerun --name imdb --arch cnn --trial 7  # reproduce a recorded trial

Thin by design: a table of commands, each parsing its options (``options``: made from the settings
dataclasses), building settings and calling one library function. Everything that needs no data is
checked before torch, transformers, Optuna or MLflow are imported, so a bad flag costs a fraction
of a second.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if __package__ in (None, "") and "textbench" not in sys.modules:  # `python benchmark.py` in a checkout
    import importlib.util

    _root = Path(__file__).resolve().parent  # this folder is the package (pyproject.toml maps it so)
    _spec = importlib.util.spec_from_file_location(
        "textbench", _root / "__init__.py", submodule_search_locations=[str(_root)]
    )
    sys.modules["textbench"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["textbench"])

from textbench import options as opt  # noqa: E402
from textbench.core.errors import UsageError  # noqa: E402


def cmd_search(argv: list[str]) -> int:
    args = opt.search_parser().parse_args(argv)
    from textbench.search.workers import worker_count

    search = opt.search_settings(args, default=opt.default_name(args.dataset))
    data, train = opt.data_settings(args), opt.settings_from(opt.TrainSettings, args)
    workers = worker_count(args.workers, search)
    from textbench.search.fixed import out_of_range, parse_fixed

    for family in search.families:
        for note in out_of_range(family, parse_fixed(family, search.fix)):
            print(note, file=sys.stderr)
    from textbench.core.data_check import precheck

    precheck(data)  # bad data files refused in a second, before torch/transformers/datasets load
    from textbench.pipeline import run_benchmark

    return run_benchmark(
        search,
        data,
        train,
        workers=workers,
        threads=args.threads,
        verbose=args.verbose,
        baseline=not args.no_baseline,
    )


def cmd_suite(argv: list[str]) -> int:
    args = opt.suite_parser().parse_args(argv)
    from textbench.search.workers import worker_count
    from textbench.suite import SuiteSettings, run_suite

    suite = opt.settings_from(SuiteSettings, args)
    search = opt.search_settings(args, default="suite")
    data, train = opt.data_settings(args), opt.settings_from(opt.TrainSettings, args)
    return run_suite(
        suite,
        search,
        data,
        train,
        name=args.name,
        workers=worker_count(args.workers, search),
        threads=args.threads,
        verbose=args.verbose,
        baseline=not args.no_baseline,
    )


def cmd_train(argv: list[str]) -> int:
    args = opt.train_parser().parse_args(argv)
    data, train = opt.data_settings(args), opt.settings_from(opt.TrainSettings, args)
    from textbench.search.fixed import out_of_range, parse_settable
    from textbench.spaces import get as get_family

    family = get_family(args.family)
    settable = parse_settable(family.name, args.overrides)
    params = {**family.notes_config, **settable}  # before the heavy imports
    for note in out_of_range(family.name, settable, "--set"):
        print(note, file=sys.stderr)
    from textbench.core.data_check import precheck

    precheck(data)
    from textbench.search.logs import configure_logging

    configure_logging(args.verbose)
    from textbench.core.single_run import train_once

    out_dir = Path(args.output_dir) / f"train-{family.name}"
    train_once(family, params, data, train, out_dir, seed=args.seed, threads=args.threads, report=True)
    return 0


def cmd_report(argv: list[str]) -> int:
    args = opt.report_parser().parse_args(argv)
    from textbench.search.search_settings import check_storage_url, check_tracking_uri, resolve_storage

    check_storage_url(resolve_storage(args.storage, args.output_dir))
    if args.tracking_uri:  # accepted so the main command's options can be copied; the report reads Optuna
        check_tracking_uri(args.tracking_uri)
    if not args.name or any(c in args.name for c in "/\\"):
        raise UsageError(f"--name {args.name!r} must be a plain name (no slashes)")
    from textbench.use import rebuild_report

    print(f"report: {rebuild_report(args.storage, args.name, args.output_dir, args.verbose)}")
    return 0


def cmd_predict(argv: list[str]) -> int:
    args = opt.predict_parser().parse_args(argv)
    if args.batch_size <= 0:  # the checks that need nothing: before logging's and the model's imports
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if (args.name is None) == (args.model is None):
        raise UsageError(
            "predict needs exactly one of --name NAME (a benchmark's chosen model) and --model DIR "
            "(a saved model folder)"
        )
    from textbench.use import predict

    predict(
        args.text,
        args.input,
        args.text_column,
        args.label_column,
        args.output,
        args.batch_size,
        model_dir=args.model,
        name=args.name,
        output_dir=args.output_dir,
        storage=args.storage,
        family=args.family,
        verbose=args.verbose,
    )
    return 0


def cmd_export(argv: list[str]) -> int:
    args = opt.export_parser().parse_args(argv)
    from textbench.use import export

    export(
        args.name,
        args.output_dir,
        args.storage,
        args.family,
        args.to,
        register=args.register,
        tracking_uri=args.tracking_uri,
        command=shlex.join(["benchmark.py", "export", *argv]),
        verbose=args.verbose,
    )
    return 0


def cmd_rerun(argv: list[str]) -> int:
    args = opt.rerun_parser().parse_args(argv)
    if args.family is None:
        raise UsageError("rerun needs --arch: the family of the trial")
    from textbench.use import rerun_and_show

    rerun_and_show(
        args.storage,
        args.name,
        args.output_dir,
        args.family,
        args.trial,
        seed=args.seed,
        save=args.save,
        threads=args.threads,
        verbose=args.verbose,
    )
    return 0


COMMANDS = {
    "": (cmd_search, opt.search_parser),
    "suite": (cmd_suite, opt.suite_parser),
    "train": (cmd_train, opt.train_parser),
    "report": (cmd_report, opt.report_parser),
    "predict": (cmd_predict, opt.predict_parser),
    "export": (cmd_export, opt.export_parser),
    "rerun": (cmd_rerun, opt.rerun_parser),
}  # "": the benchmark
PARSERS = {name: parser for name, (_, parser) in COMMANDS.items()}  # docs/CLI.md is generated from these


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _sigterm)
    name = argv[0] if argv and argv[0] in COMMANDS else ""
    try:
        from textbench.search.plugins import load_families

        load_families(opt.family_modules(argv))  # before any parser lists the families
        return COMMANDS[name][0](argv[1:] if name else argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a full disk is not a bug: one line and how to resume (core/disk.py)
        from textbench.core.disk import FULL_DISK_EXIT, full_disk_message

        message = full_disk_message(exc, opt.output_dir_of(argv))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return FULL_DISK_EXIT


if __name__ == "__main__":
    sys.exit(main())
