"""textbench command line: which text-classifier family wins on this data, by how much, how sure.

    python benchmark.py --arch both --trials 50          # search, final evaluation, report
    python benchmark.py train --arch cnn                  # the course notes' single run
    python benchmark.py report --name imdb                # rebuild a report from storage
    python benchmark.py predict --name imdb --input reviews.csv --output labelled.csv
    python benchmark.py export --name imdb --to imdb-model  # folder for transformers.pipeline + model card
    python benchmark.py rerun --name imdb --arch cnn --trial 7  # reproduce a recorded trial

Thin by design: parse, validate into settings dataclasses, call search/ and reports/. Everything
that needs no data is checked before torch, transformers, Optuna or MLflow are imported, so a bad
flag costs a fraction of a second; each command imports what it runs after that.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.errors import UsageError  # noqa: E402

log = logging.getLogger("textbench")
SUBCOMMANDS = ("train", "report", "predict", "export", "rerun")


# ---------------------------------------------------------------- options


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="imdb",
                   help="hub id, or a local folder with train/validation (or valid, dev)/test files, or one "
                        ".parquet/.csv/.tsv/.jsonl/.json file, optionally .gz/.bz2/.xz (default: imdb)")
    g.add_argument("--data-dir", default=None,
                   help="local mirror: DIR/<dataset>/ and DIR/<tokenizer>/ are used before the hub "
                        "(default: $TEXTBENCH_DATA)")
    g.add_argument("--text-column", default="text",
                   help="text column name, or a comma list of columns joined by a space (default: text)")
    g.add_argument("--label-column", default="label", help="label column name; ints or strings (default: label)")
    g.add_argument("--no-header", action="store_true",
                   help="CSV/TSV files have no header row: give --text-column/--label-column as 0-based numbers")
    g.add_argument("--drop-invalid", action="store_true",
                   help="drop rows without a label or with an empty text even when they are more than 5%% of a "
                        "split (they are always counted in the log and the report)")
    g.add_argument("--tokenizer", default="bert-base-cased", help="hub id or local folder (default: bert-base-cased)")
    g.add_argument("--max-length", type=int, default=128, help="tokens per text after truncation (default: 128)")
    g.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of train held out for early stopping and selection (default: 0.1)")
    g.add_argument("--test-fraction", type=float, default=0.2,
                   help="share held out as test when the dataset has no test split (default: 0.2)")
    g.add_argument("--max-train-samples", type=int, default=None, help="cap the training split (quick runs)")
    g.add_argument("--max-eval-samples", type=int, default=None, help="cap the validation and test splits")


def add_budget_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training budget (the same for every family)")
    g.add_argument("--max-steps", type=int, default=2500, help="optimizer steps per run (default: 2500)")
    g.add_argument("--eval-steps", type=int, default=500, help="evaluate on validation every N steps (default: 500)")
    g.add_argument("--batch-size", type=int, default=8, help="training batch size (default: 8)")
    g.add_argument("--patience", type=int, default=5,
                   help="early stopping: evaluations without improvement; 0 disables (default: 5)")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32, or the Trainer's mixed precision: bf16 (on a GPU, or autocast on a CPU) or fp16 "
                        "(CUDA GPUs only); part of the budget (default: fp32)")


def add_storage_options(p: argparse.ArgumentParser) -> None:
    """Where results live: the same options on the main command and on ``report``."""
    p.add_argument("--storage", default=None,
                   help="Optuna storage: a journal file (PATH.journal), sqlite:///PATH or postgresql://USER@HOST/DB "
                        "(default: OUTPUT_DIR/optuna.journal; an earlier version's OUTPUT_DIR/optuna.db if only it exists)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUTPUT_DIR/mlflow.db)")


def add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", default="runs", help="where studies, models, reports go (default: runs)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split, the sampler and the trials (default: 42)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default: 1; these small models gain little from intra-op "
                        "threads, and 2+ threads slow them down up to 15x when another process shares the cores: "
                        "use --workers for parallelism)")
    p.add_argument("-v", "--verbose", action="store_true", help="show library logs, warnings and progress bars")


def search_parser() -> argparse.ArgumentParser:
    from search.fixed import describe_spaces
    from spaces import SPACES

    p = argparse.ArgumentParser(
        prog="benchmark.py",
        description="Hyperparameter search and benchmark of text-classifier families (Optuna + HF Trainer + "
                    "MLflow), with a final test evaluation over seeds and an HTML report. "
                    "Subcommands: 'train' (one run of the course notes' configuration), 'report' (rebuild a report), "
                    "'predict', 'export' (use the chosen model), 'rerun' (reproduce a recorded trial).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="search spaces (pin any with --fix name=value):\n" + describe_spaces(),
    )
    p.add_argument("--arch", default="both",
                   help=f"'both' (cnn,rnn), 'all', or a comma list of: {', '.join(SPACES)} (default: both)")
    p.add_argument("--trials", type=int, default=50, help="finished trials per family (default: 50)")
    p.add_argument("--name", default=None, help="benchmark name: studies are NAME-ARCH (default: dataset name)")
    add_storage_options(p)
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "qmc", "cmaes"],
                   help="Optuna's sampler, seeded with --seed (default: tpe)")
    p.add_argument("--pruner", default="margin", choices=["margin", "median", "hyperband", "none"],
                   help="margin (default): median pruning beyond 2 binomial standard errors of validation accuracy; "
                        "median: Optuna's MedianPruner; hyperband; none")
    p.add_argument("--workers", default="auto",
                   help="local worker processes sharing the studies, one torch thread each: 'auto' = one per "
                        "usable core, bounded by memory (one on a sqlite:/// storage); 1 = a single process "
                        "(default: auto)")
    p.add_argument("--timeout", type=float, default=None, help="stop each study after this many seconds")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                   help="pin a search-space parameter, e.g. --fix num_layers=1 (repeatable)")
    p.add_argument("--no-reference", action="store_true",
                   help="do not start each study with the course notes' configuration (trial 0, also re-trained "
                        "in the final stage to measure what tuning bought)")
    p.add_argument("--no-mlflow", action="store_true", help="turn MLflow tracking off")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + logistic regression baseline")
    p.add_argument("--top-k", type=int, default=3, help="configurations per family re-run for the final test (default: 3)")
    p.add_argument("--final-seeds", type=int, default=3, help="seeds per final configuration; 0 skips (default: 3)")
    add_data_options(p)
    add_budget_options(p)
    add_common_options(p)
    return p


def train_parser() -> argparse.ArgumentParser:
    from core.families import SEED_CONFIGS

    seeds = "; ".join(f"{a}: " + ", ".join(f"{k}={v}" for k, v in c.items()) for a, c in SEED_CONFIGS.items())
    p = argparse.ArgumentParser(
        prog="benchmark.py train",
        description="One training run of a family with the course notes' configuration, evaluated once on test. "
                    f"Defaults: {seeds}; learning_rate=0.001.",
    )
    p.add_argument("--arch", required=True, choices=list(SEED_CONFIGS), help="model family")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                   help="override a model parameter or learning_rate, e.g. --set num_filters=100 (repeatable)")
    add_data_options(p)
    add_budget_options(p)
    add_common_options(p)
    return p


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmark.py report", description="Rebuild a benchmark's HTML report from storage.")
    p.add_argument("--name", required=True, help="benchmark name")
    p.add_argument("--output-dir", default="runs", help="where the benchmark's outputs are (default: runs)")
    add_storage_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="show library logs, warnings and progress bars")
    return p


def add_benchmark_options(p: argparse.ArgumentParser, arch_help: str, name_required: bool = True) -> None:
    p.add_argument("--name", required=name_required, help="benchmark name")
    p.add_argument("--arch", default=None, help=arch_help)
    p.add_argument("--output-dir", default="runs", help="the benchmark's --output-dir (default: runs)")
    p.add_argument("--storage", default=None,
                   help="the benchmark's --storage (default: OUTPUT_DIR/optuna.journal, or an earlier version's "
                        "OUTPUT_DIR/optuna.db)")
    p.add_argument("-v", "--verbose", action="store_true", help="show library logs, warnings and progress bars")


USE_ARCH = ("family whose chosen model to use (default: the winner: the family whose chosen configuration has "
            "the best mean validation accuracy in the final stage)")


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py predict",
        description="Predict labels and class probabilities with a benchmark's chosen model (its own tokenizer, "
                    "max length and label names). With a label column in --input, also print the accuracy.")
    add_benchmark_options(p, USE_ARCH, name_required=False)
    p.add_argument("--model", default=None,
                   help="a saved model folder instead of a benchmark's chosen model (e.g. train's "
                        "OUTPUT_DIR/train-ARCH/model, a models/ folder, an export)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", nargs="+", help="one or more texts")
    source.add_argument("--input", help="a .csv, .jsonl or .parquet file with a text column")
    p.add_argument("--text-column", default="text", help="text column of --input (default: text)")
    p.add_argument("--label-column", default="label",
                   help="true labels in --input, used for the accuracy when present (default: label)")
    p.add_argument("--output", default=None, help="write every row with its prediction to .csv/.jsonl/.parquet")
    p.add_argument("--batch-size", type=int, default=256, help="texts per forward pass (default: 256)")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py export",
        description="Write a benchmark's chosen model to a folder that transformers.pipeline('text-classification', "
                    "model=DIR, trust_remote_code=True, truncation=True) loads without textbench, with a model "
                    "card README.md; --register also registers it in the MLflow Model Registry.")
    add_benchmark_options(p, USE_ARCH)
    p.add_argument("--to", required=True, help="a new (or empty) folder")
    p.add_argument("--register", action="store_true",
                   help="also log the model to MLflow and register it as textbench-NAME-ARCH")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUTPUT_DIR/mlflow.db)")
    return p


def rerun_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py rerun",
        description="Re-train one recorded trial from its parameters and seed and print the recorded and "
                    "re-obtained validation accuracy side by side (bit-identical on the same CPU build and "
                    "--threads).")
    add_benchmark_options(p, "model family of the trial")
    p.add_argument("--trial", type=int, required=True, help="trial number")
    p.add_argument("--seed", type=int, default=None,
                   help="re-train the trial's final-stage run with this seed (also re-evaluates test)")
    p.add_argument("--save", action="store_true",
                   help="keep the re-trained model where predict/export look for it")
    p.add_argument("--threads", type=int, default=1, help="torch threads, as in the benchmark (default: 1)")
    return p


# ---------------------------------------------------------------- settings from options


def data_settings(args) -> DataSettings:  # noqa: F821
    from core.settings import DataSettings

    return DataSettings(
        dataset=args.dataset, data_dir=args.data_dir, text_column=args.text_column, label_column=args.label_column,
        no_header=args.no_header, drop_invalid=args.drop_invalid,
        tokenizer=args.tokenizer, max_length=args.max_length, validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction, max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples, seed=args.seed, cache_dir=str(Path(args.output_dir) / "cache"),
    )


def train_settings(args, learning_rate: float = 1e-3) -> TrainSettings:  # noqa: F821
    from core.settings import TrainSettings

    return TrainSettings(max_steps=args.max_steps, eval_steps=args.eval_steps, batch_size=args.batch_size,
                         patience=args.patience, learning_rate=learning_rate, precision=args.precision)


def default_name(dataset: str) -> str:
    """imdb -> imdb; owner/imdb -> imdb; data/rt_polarity/all.parquet -> rt_polarity-all."""
    path = Path(dataset)
    if path.suffix and path.parent.name:
        return f"{path.parent.name}-{path.stem}"
    return path.stem or "benchmark"


def parse_archs(text: str) -> list[str]:
    from spaces import SPACES

    if text == "both":
        return ["cnn", "rnn"]
    if text == "all":
        return list(SPACES)
    return [a.strip() for a in text.split(",") if a.strip()]


# ---------------------------------------------------------------- commands


def cmd_train(argv: list[str]) -> int:
    args = train_parser().parse_args(argv)
    data, train = data_settings(args), train_settings(args)
    from search.fixed import check_settable, parse_fixed

    check_settable(args.arch, args.overrides)  # before logging's and the models' heavy imports: exits at once
    searched = parse_fixed(args.arch, args.overrides, option="--set")  # typed, checked against the space
    configure_logging(args.verbose)
    from core.models import SEED_CONFIGS, coerce_params
    from core.single_run import train_once

    params = {**SEED_CONFIGS[args.arch], "learning_rate": 1e-3, **coerce_params(args.arch, args.overrides), **searched}
    train = train_settings(args, params.pop("learning_rate"))
    out_dir = Path(args.output_dir) / f"train-{args.arch}"
    metrics = train_once(args.arch, params, data, train, out_dir, seed=args.seed, threads=args.threads)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out_dir}/metrics.json, curves.csv, curves.png")
    print(f"model (label names in config.json): {out_dir / 'model'}")
    print(f"use it: python benchmark.py predict --model {shlex.quote(str(out_dir / 'model'))} --text \"a text to classify\"")
    return 0


def search_settings(args, progress: bool = True) -> SearchSettings:  # noqa: F821
    from search.settings import SearchSettings

    return SearchSettings(
        archs=parse_archs(args.arch), trials=args.trials, name=args.name or default_name(args.dataset),
        output_dir=args.output_dir, storage=args.storage, seed=args.seed, sampler=args.sampler, pruner=args.pruner,
        timeout=args.timeout, fix=args.fix, reference=not args.no_reference, top_k=args.top_k, final_seeds=args.final_seeds,
        tracking_uri=args.tracking_uri, mlflow=not args.no_mlflow, progress=progress,
    )


def cmd_search(argv: list[str]) -> int:
    args = search_parser().parse_args(argv)
    search, data, train = search_settings(args), data_settings(args), train_settings(args)
    from search.workers import gpu_ids, pin_device, worker_count

    n_workers = worker_count(args.workers, search)

    gpus = gpu_ids()
    pin_device(0, gpus)  # this process is worker 0; before anything starts CUDA
    configure_logging(args.verbose)  # the heavy imports start here
    from core.training import set_threads
    from core.urls import redact
    from search.benchmark import format_summary, run, setup, summary_rows, tracker
    from search.final import run_final
    from search.workers import Workers

    set_threads(args.threads)
    log.info("workers: %d (--workers %s), storage: %s", n_workers, args.workers, redact(search.storage))
    workers = Workers((search, data, train), n_workers, args.threads, gpus, args.verbose) if n_workers > 1 else None
    try:
        bench = setup(search, data, train)
    except BaseException:
        if workers is not None:
            workers.abort()
        raise
    log.info("data: %s", {k: v for k, v in bench.data.describe().items() if k != "labels"})
    from search.overall import Overall

    bench.overall = Overall(families=search.archs, trials=search.trials, final_runs=search.top_k * search.final_seeds,
                            baseline=not args.no_baseline, max_steps=args.max_steps,
                            train_rows=len(bench.data.splits["train"]), workers=n_workers)
    try:
        if workers is not None:
            workers.go()
        studies = run(bench)  # with helpers, this process is worker 0
        if workers is not None:
            for arch, study in studies.items():  # the final stage, split with the helpers
                run_final(bench, study, arch, tracker(bench), share=True)
            code, problem = workers.join()
            if code:
                print(f"error: {problem}; finished trials are kept: rerun the same command to resume",
                      file=sys.stderr)
                return code
        for arch, study in studies.items():
            run_final(bench, study, arch, tracker(bench))
        baseline = None
        if not args.no_baseline:
            from search.baseline import run_baseline  # scikit-learn's models: imported when used

            bench.overall.phase = "baseline"
            log.info("%s", bench.overall.line())
            baseline = run_baseline(bench, studies, tracker(bench))
    except KeyboardInterrupt:
        if workers is not None:
            workers.interrupt()
        print(f"\ninterrupted: finished trials are kept; rerun the same command to resume benchmark '{search.name}'",
              file=sys.stderr)
        return 130
    except BaseException:
        if workers is not None:
            workers.abort()
        raise
    print()
    rows = summary_rows(studies, baseline)
    print(format_summary(rows))
    tracking = tracker(bench)
    for row in rows if tracking is not None else []:
        if row["arch"] in studies:  # the chosen configuration on each study's parent run, as in the report
            tracking.chosen_config(studies[row["arch"]], row)
    print_tuning_gains(bench, studies, tracking)
    if tracking is not None:
        state = f"BROKEN ({tracking.broken})" if tracking.broken else "ok"
        from search.tracking import runs_table_path

        local = not tracking.uri.startswith(("http", "databricks"))  # a server has its own UI
        ui = f"mlflow ui --backend-store-uri {shlex.quote(redact(tracking.uri))}, then " if local else ""
        print(f"MLflow: {redact(tracking.uri)} experiment '{search.name}' [{state}] "
              f"(runs table: {ui}{runs_table_path(tracking.experiment_id)})")
        if not tracking.broken:
            from search.registry import register_models

            uris = register_models(search.storage, search.name, search.output_dir, tracking.uri)
            print(f"MLflow Model Registry: {', '.join(uris) or 'nothing registered'}")
    from search.benchmark import artifact_dir

    print(f"Optuna: {redact(search.storage)} (optuna-dashboard {shlex.quote(redact(search.storage))} "
          f"--artifact-dir {shlex.quote(str(artifact_dir(search)))})")
    from reports import build_report

    print(f"report: {build_report(bench.storage, search.name, search.run_dir)}")
    return 0


def print_tuning_gains(bench, studies: dict, tracking) -> None:
    """What tuning bought over the course notes' settings: printed, and on each study's MLflow parent run
    (``reports.tuning``: the same frame as tuning.csv and the report)."""
    from reports import collect, tuning

    gains = tuning.for_benchmark(collect.load_benchmark(bench.storage, bench.search.name))
    if gains.empty:
        return
    print("\nwhat tuning bought over the course notes' settings (test accuracy; gain = chosen - notes, paired on "
          "the same test examples, Holm-adjusted p):")
    print(tuning.format_table(gains))
    print(tuning.sentence(gains))
    for _, row in gains.iterrows():
        if tracking is not None and row["family"] in studies:
            tracking.tuning_gain(studies[row["family"]], row)


def cmd_report(argv: list[str]) -> int:
    args = report_parser().parse_args(argv)
    from search.settings import check_storage_url, check_tracking_uri, is_journal, resolve_storage

    storage = resolve_storage(args.storage, args.output_dir)
    check_storage_url(storage)
    if is_journal(storage) and not Path(storage).is_file():  # reading must not create an empty store
        raise UsageError(f"no study storage at {storage}: pass the --output-dir (or --storage) of the benchmark run")
    if args.tracking_uri:  # accepted so the main command's options can be copied; the report reads Optuna
        check_tracking_uri(args.tracking_uri)
    if not args.name or any(c in args.name for c in "/\\"):
        raise UsageError(f"--name {args.name!r} must be a plain name (no slashes)")
    configure_logging(args.verbose)
    from reports import build_report
    from search.study import make_storage

    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():  # opening would create it
        raise UsageError(f"no Optuna storage at {storage[len('sqlite:///'):]}: pass the --output-dir (or --storage) "
                         "the benchmark ran with")
    path = build_report(make_storage(storage), args.name, Path(args.output_dir) / args.name)
    print(f"report: {path}")
    return 0


def configure_logging(verbose: bool) -> None:
    from core.logs import configure_logging

    configure_logging(verbose)


def _chosen(args):
    from search.settings import resolve_storage
    from search.use import resolve

    return resolve(resolve_storage(args.storage, args.output_dir), args.name, args.output_dir, args.arch)


def cmd_predict(argv: list[str]) -> int:
    args = predict_parser().parse_args(argv)
    if args.batch_size <= 0:  # the checks that need nothing: before logging's and the model's imports
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    if (args.name is None) == (args.model is None):
        raise UsageError("predict needs exactly one of --name NAME (a benchmark's chosen model) and --model DIR (a saved model folder)")
    configure_logging(args.verbose)
    import pandas as pd

    from core.inference import Classifier, accuracy, check_output, read_texts, write_table

    check_output(args.output)
    column = args.text_column if args.input else "text"
    frame = read_texts(args.input, column) if args.input else pd.DataFrame({"text": args.text})
    if args.model is not None:
        print(f"model: {args.model}", file=sys.stderr)
        model = Classifier.load(args.model)
    else:
        chosen = _chosen(args)
        print(f"model: {chosen.describe()}", file=sys.stderr)
        model = Classifier.load(chosen.model_dir)
    texts = frame[column].fillna("").astype(str).tolist()  # an empty cell is an empty text
    predicted = model.predict(texts, args.batch_size, progress=len(texts) > 10 * args.batch_size)
    out = pd.concat([frame.reset_index(drop=True), predicted.rename(columns={"label": "prediction"})], axis=1)
    if args.output:
        write_table(out, args.output)
        print(f"wrote {len(out)} predictions to {args.output}")
    else:
        print(out.head(20).assign(**{column: out[column].astype(str).str.slice(0, 60)}).to_string(index=False))
        if len(out) > 20:
            print(f"... {len(out)} rows: pass --output FILE to write them all")
    if args.input and args.label_column in frame.columns:
        acc, unknown = accuracy(frame[args.label_column].tolist(), predicted["label"].tolist(), model.label_names)
        note = f" ({unknown} rows have a label the model does not know)" if unknown else ""
        print(f"accuracy against column {args.label_column!r}: {acc:.4f} on {len(frame)} rows{note}")
    return 0


def cmd_export(argv: list[str]) -> int:
    args = export_parser().parse_args(argv)
    configure_logging(args.verbose)
    from core.export import export_folder
    from core.inference import saved_labels
    from reports.card import model_card

    chosen = _chosen(args)
    labels, max_length = saved_labels(chosen.model_dir)
    command = shlex.join(["benchmark.py", "export", *argv])
    card = model_card(chosen, str(args.to), command, labels, max_length)
    folder = export_folder(chosen.model_dir, args.to, chosen.arch, {"README.md": card})
    print(f"exported {chosen.describe()} to {folder}")
    print(f'load it: transformers.pipeline("text-classification", model="{folder}", trust_remote_code=True, '
          "truncation=True)")
    if args.register:
        from search.registry import register
        from search.tracking import default_tracking_uri

        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(args.output_dir)
        version = register(chosen, uri, Path(args.output_dir) / args.name / "mlartifacts", labels, max_length)
        print(f"registered: models:/{version.name}/{version.version}")
    return 0


def cmd_rerun(argv: list[str]) -> int:
    args = rerun_parser().parse_args(argv)
    configure_logging(args.verbose)
    from search.rerun import format_rerun, rerun

    if args.arch is None:
        raise UsageError("rerun needs --arch: the family of the trial")
    from search.settings import resolve_storage

    storage = resolve_storage(args.storage, args.output_dir)
    result = rerun(storage, args.name, args.output_dir, args.arch, args.trial, seed=args.seed, save=args.save,
                   threads=args.threads)
    print(format_rerun(result))
    return 0


def _sigterm(signum, frame):
    raise KeyboardInterrupt


COMMANDS = {"train": cmd_train, "report": cmd_report, "predict": cmd_predict, "export": cmd_export,
            "rerun": cmd_rerun}  # anything else is the flagship search
PARSERS = {"": search_parser, "train": train_parser, "report": report_parser, "predict": predict_parser,
           "export": export_parser, "rerun": rerun_parser}  # docs/CLI.md is generated from these


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _sigterm)
    command = COMMANDS.get(argv[0] if argv else "", None)
    try:
        if command is not None:
            return command(argv[1:])
        return cmd_search(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
