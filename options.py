"""The command line's options, made from the settings dataclasses: each option's default, type and
choices are read from its field, so they are written once (``core.settings``, ``search.search_settings``)
and ``args`` maps one-to-one onto the settings (``settings_from``).

Light by design: the settings and the family registry need no torch, so ``--help`` and a bad flag
cost a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from textbench.core.settings import PRECISIONS, SEPARATORS, DataSettings, TrainSettings
from textbench.search.search_settings import PRUNERS, SAMPLERS, SearchSettings

WHERE = "where studies, models, reports go"
VERBOSE = "show library logs, warnings and progress bars"
TRACKING = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUTPUT_DIR/mlflow.db)"
STORAGE = (
    "Optuna storage: a journal file (PATH.journal), sqlite:///PATH or postgresql://USER@HOST/DB "
    "(default: OUTPUT_DIR/optuna.journal; an earlier version's OUTPUT_DIR/optuna.db if only it exists)"
)


def default_of(cls: type, name: str):
    spec = cls.__dataclass_fields__[name]
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def setting(
    group, cls: type, name: str, help: str, *, flag: str | None = None, shown: object = None, **kwargs
) -> None:
    """``--name`` for field ``name`` of ``cls``: its default and type from the field; a False bool is a
    switch, a True one a ``flag`` that turns it off; ``shown`` replaces the default in the help (False:
    none shown)."""
    default = default_of(cls, name)
    flag = flag or "--" + name.replace("_", "-")
    if isinstance(default, bool):
        action = "store_false" if default else "store_true"
        group.add_argument(flag, dest=name, action=action, help=help, **kwargs)
        return
    if default is not None and "action" not in kwargs and "type" not in kwargs:
        kwargs["type"] = type(default)
    shown = default if shown is None else shown
    text = f"{help} (default: {shown})" if shown not in (None, False) else help
    group.add_argument(flag, dest=name, default=default, help=text, **kwargs)


def settings_from(cls: type, args: argparse.Namespace, **overrides):
    """``cls`` from the parsed options that are its fields (plus ``overrides``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **overrides})


def add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    D = DataSettings
    setting(
        g,
        D,
        "dataset",
        "hub id, or a local folder with train/validation (or valid, dev)/test files, or one "
        ".parquet/.csv/.tsv/.jsonl/.json file, optionally .gz/.bz2/.xz",
    )
    setting(
        g,
        D,
        "data_dir",
        "local mirror: DIR/<dataset>/ and DIR/<tokenizer>/ are used before the hub",
        shown="$TEXTBENCH_DATA",
    )
    setting(g, D, "text_column", "text column name, or a comma list of columns joined by a space")
    setting(g, D, "label_column", "label column name; ints or strings")
    setting(
        g,
        D,
        "no_header",
        "CSV/TSV files have no header row: give --text-column/--label-column as 0-based numbers",
    )
    setting(
        g,
        D,
        "separator",
        "how a text file (no extension, .txt) is laid out: tab, ';', '|', ',', space (a label, one space, "
        "the text) or fasttext (__label__X text); sniffed when not given",
        choices=SEPARATORS,
        shown="sniffed",
    )
    setting(
        g,
        D,
        "label_names",
        "names of numeric labels 0..k-1 or 1..k, e.g. World,Sports,Business,Sci/Tech "
        "(default: a classes.txt beside the data, one name per line)",
        shown=False,
    )
    setting(
        g,
        D,
        "drop_invalid",
        "drop rows without a label or with an empty text even when they are more than "
        "5%% of a split (they are always counted in the log and the report)",
    )
    setting(g, D, "tokenizer", "hub id or local folder")
    setting(g, D, "max_length", "tokens per text after truncation")
    setting(g, D, "validation_fraction", "share of train held out for early stopping and selection")
    setting(g, D, "test_fraction", "share held out as test when the dataset has no test split")
    setting(g, D, "max_train_samples", "cap the training split (quick runs)", type=int)
    setting(g, D, "max_eval_samples", "cap the validation and test splits", type=int)


def add_budget_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training budget (the same for every family)")
    T = TrainSettings
    setting(g, T, "max_steps", "optimizer steps per run")
    setting(g, T, "eval_steps", "evaluate on validation every N steps")
    setting(g, T, "batch_size", "training batch size")
    setting(g, T, "patience", "early stopping: evaluations without improvement; 0 disables")
    setting(
        g,
        T,
        "precision",
        "fp32, or the Trainer's mixed precision: bf16 (on a GPU, or autocast on a CPU) or "
        "fp16 (CUDA GPUs only); part of the budget",
        choices=PRECISIONS,
    )


def add_storage_options(p: argparse.ArgumentParser) -> None:
    """Where results live: the same options on the main command and on ``report``."""
    p.add_argument("--storage", default=None, help=STORAGE)
    p.add_argument("--tracking-uri", default=None, help=TRACKING)


FAMILY_MODULE = (
    "a Python module or .py file defining your own families (Family records: see the README); "
    "repeatable; a finished benchmark's studies remember it"
)


def add_family_module_option(p: argparse.ArgumentParser) -> None:
    """``--family-module``, on every command: read by ``family_modules`` before the parsers are made."""
    p.add_argument(
        "--family-module", action="append", default=[], metavar="MODULE_OR_FILE", help=FAMILY_MODULE
    )


def family_modules(argv: list[str]) -> list[str]:
    """The ``--family-module`` values of ``argv``, read before any parser is built (the parsers list
    the families, so the user's must be registered first)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_family_module_option(p)
    return p.parse_known_args(argv)[0].family_module


def add_common_options(p: argparse.ArgumentParser) -> None:
    setting(p, SearchSettings, "output_dir", WHERE)
    setting(p, SearchSettings, "seed", "seed of the split, the sampler and the trials")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (default: 1; these small models gain little from intra-op "
        "threads, and 2+ threads slow them down up to 15x when another process shares the "
        "cores: use --workers for parallelism)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    add_family_module_option(p)


def _search_parser(description: str, epilog: str) -> argparse.ArgumentParser:
    from textbench.spaces import FAMILIES

    p = argparse.ArgumentParser(
        prog="benchmark.py",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    S = SearchSettings
    p.add_argument(
        "--arch",
        default="both",
        metavar="FAMILIES",
        help=f"'both' (cnn,rnn), 'all', or a comma list of: {', '.join(FAMILIES)} (default: both)",
    )
    setting(p, S, "trials", "finished trials per family")
    p.add_argument(
        "--name", default=None, help="benchmark name: studies are NAME-FAMILY (default: dataset name)"
    )
    add_storage_options(p)
    setting(p, S, "sampler", "Optuna's sampler, seeded with --seed", choices=SAMPLERS)
    p.add_argument(
        "--pruner",
        default=default_of(S, "pruner"),
        choices=PRUNERS,
        help="margin (default): median pruning beyond 2 binomial standard errors of validation "
        "accuracy; median: Optuna's MedianPruner; hyperband; none",
    )
    p.add_argument(
        "--workers",
        default="auto",
        help="local worker processes sharing the studies, one torch thread each: 'auto' = one per "
        "usable core, bounded by memory (one on a sqlite:/// storage); 1 = a single process "
        "(default: auto)",
    )
    setting(p, S, "timeout", "stop each study after this many seconds", type=float)
    setting(
        p,
        S,
        "time_budget",
        "wall-clock budget of the whole benchmark (searches, final stage, baseline, report), e.g. 90m, "
        "1h30m, 45s or seconds: every family gets the same number of trials, the most that fit; a "
        "resumed run counts only the time already spent running",
        metavar="DURATION",
        type=str,
    )
    setting(
        p,
        S,
        "stop_when_converged",
        "stop a family's search when Optuna's Terminator bounds what more trials could gain below the "
        "binomial standard error of validation accuracy, or when the best has moved by less than that "
        "error in the last --stagnation-trials trials (--trials stays the cap)",
    )
    setting(p, S, "min_trials", "completed trials before --stop-when-converged may stop a search")
    setting(
        p,
        S,
        "stagnation_trials",
        "--stop-when-converged: stop when the best validation accuracy moved by less than its standard "
        "error in this many finished trials",
    )
    setting(
        p,
        S,
        "fix",
        "pin a search-space parameter, e.g. --fix num_layers=1 (repeatable)",
        action="append",
        metavar="NAME=VALUE",
        shown=False,
    )
    setting(
        p,
        S,
        "reference",
        "do not start each study with the course notes' configuration (trial 0, also "
        "re-trained in the final stage to measure what tuning bought)",
        flag="--no-reference",
    )
    setting(p, S, "mlflow", "turn MLflow tracking off", flag="--no-mlflow")
    p.add_argument(
        "--no-baseline", action="store_true", help="skip the TF-IDF + logistic regression baseline"
    )
    setting(p, S, "top_k", "configurations per family re-run for the final test")
    setting(p, S, "final_seeds", "seeds per final configuration; 0 skips")
    setting(
        p,
        S,
        "finetune",
        "also fine-tune this pretrained model (a Hugging Face Hub id, or a folder written by "
        "save_pretrained) with its own tokenizer as a reference row: same split, steps, batch size, "
        "evaluation cadence, patience and final seeds; learning rate chosen on validation from 2e-5, "
        "3e-5, 5e-5; its cost is measured and printed before it starts",
        metavar="MODEL",
        type=str,
    )
    add_data_options(p)
    add_budget_options(p)
    add_common_options(p)
    return p


def add_benchmark_options(p: argparse.ArgumentParser, family_help: str, name_required: bool = True) -> None:
    """The options that find a finished benchmark (``predict``, ``export``, ``rerun``)."""
    p.add_argument("--name", required=name_required, help="benchmark name")
    p.add_argument("--arch", dest="family", metavar="FAMILY", default=None, help=family_help)
    setting(p, SearchSettings, "output_dir", "the benchmark's --output-dir")
    p.add_argument(
        "--storage",
        default=None,
        help="the benchmark's --storage (default: OUTPUT_DIR/optuna.journal, or an earlier version's "
        "OUTPUT_DIR/optuna.db)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    add_family_module_option(p)


def data_settings(args) -> DataSettings:
    return settings_from(DataSettings, args, seed=args.seed, cache_dir=str(Path(args.output_dir) / "cache"))


# ---------------------------------------------------------------- one parser per command

DESCRIPTION = (
    "Hyperparameter search and benchmark of text-classifier families (Optuna + HF Trainer + MLflow), "
    "with a final test evaluation over seeds and an HTML report. Subcommands: 'train' (one run of the "
    "course notes' configuration), 'report' (rebuild a report), 'predict', 'export' (use the chosen "
    "model), 'rerun' (reproduce a recorded trial)."
)
USE_FAMILY = (
    "family whose chosen model to use (default: the winner: the family whose chosen configuration has "
    "the best mean validation accuracy in the final stage); 'finetune': the --finetune reference's model"
)


def suite_parser() -> argparse.ArgumentParser:
    """The main command's options (applied to every dataset alike) plus the suite's own."""
    from textbench.search.fixed import describe_spaces
    from textbench.suite import SuiteSettings

    p = _search_parser(
        "Run one ordinary benchmark per dataset (same families, trials, budget and seeds for all; each "
        "named SUITE-DATASET with its own report), then the suite report: which family wins across "
        "datasets (average ranks, Friedman/autorank with a critical-difference diagram, Bayesian "
        "signed-rank probabilities). Rerun the same command to resume.",
        "search spaces (pin any with --fix name=value):\n" + describe_spaces(),
    )
    p.prog = "benchmark.py suite"
    g = p.add_argument_group("suite")
    setting(
        g, SuiteSettings, "datasets", "comma list of datasets: hub ids, folders or files", metavar="A,B,..."
    )
    setting(
        g,
        SuiteSettings,
        "suite",
        'a TOML file: name = "..." and [[dataset]] tables with path and optional name, text_column, '
        "label_column, no_header, separator, label_names, max_train_samples, max_eval_samples",
        metavar="FILE.toml",
    )
    setting(g, SuiteSettings, "rope", "region of practical equivalence of the Bayesian test, in accuracy")
    return p


def search_parser() -> argparse.ArgumentParser:
    from textbench.search.fixed import describe_spaces

    return _search_parser(DESCRIPTION, "search spaces (pin any with --fix name=value):\n" + describe_spaces())


def train_parser() -> argparse.ArgumentParser:
    from textbench.spaces import FAMILIES

    notes = "; ".join(
        f"{f.name}: " + ", ".join(f"{k}={v}" for k, v in f.notes_config.items()) for f in FAMILIES.values()
    )
    p = argparse.ArgumentParser(
        prog="benchmark.py train",
        description="One training run of a family with the "
        f"course notes' configuration, evaluated once on test. Defaults: {notes}.",
    )
    p.add_argument(
        "--arch", dest="family", metavar="FAMILY", required=True, choices=list(FAMILIES), help="model family"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="overrides",
        help="override a model parameter or learning_rate, e.g. --set num_filters=100 (repeatable)",
    )
    add_data_options(p)
    add_budget_options(p)
    add_common_options(p)
    return p


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py report", description="Rebuild a benchmark's HTML report from storage."
    )
    p.add_argument("--name", required=True, help="benchmark name")
    setting(p, SearchSettings, "output_dir", "where the benchmark's outputs are")
    add_storage_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    add_family_module_option(p)
    return p


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py predict",
        description="Predict labels and class "
        "probabilities with a benchmark's chosen model (its own tokenizer, max length "
        "and label names). With a label column in --input, also print the accuracy.",
    )
    add_benchmark_options(p, USE_FAMILY, name_required=False)
    p.add_argument(
        "--model",
        default=None,
        help="a saved model folder instead of a benchmark's chosen model "
        "(e.g. train's OUTPUT_DIR/train-FAMILY/model, a models/ folder, an export)",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", nargs="+", help="one or more texts")
    source.add_argument("--input", help="a .csv, .jsonl or .parquet file with a text column")
    p.add_argument("--text-column", default="text", help="text column of --input (default: text)")
    p.add_argument(
        "--label-column",
        default="label",
        help="true labels in --input, used for the accuracy when present (default: label)",
    )
    p.add_argument(
        "--output", default=None, help="write every row with its prediction to .csv/.jsonl/.parquet"
    )
    p.add_argument("--batch-size", type=int, default=256, help="texts per forward pass (default: 256)")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py export",
        description="Write a benchmark's chosen model to a "
        "folder that transformers.pipeline('text-classification', model=DIR, "
        "trust_remote_code=True, truncation=True) loads without textbench, with a model "
        "card README.md; --register also registers it in the MLflow Model Registry.",
    )
    add_benchmark_options(p, USE_FAMILY)
    p.add_argument("--to", required=True, help="a new (or empty) folder")
    p.add_argument(
        "--register",
        action="store_true",
        help="also log the model to MLflow and register it as textbench-NAME-FAMILY",
    )
    p.add_argument("--tracking-uri", default=None, help=TRACKING)
    return p


def rerun_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark.py rerun",
        description="Re-train one recorded trial from its "
        "parameters and seed and print the recorded and re-obtained validation accuracy "
        "side by side (bit-identical on the same CPU build and --threads).",
    )
    add_benchmark_options(p, "model family of the trial")
    p.add_argument("--trial", type=int, required=True, help="trial number")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="re-train the trial's final-stage run with this seed (also re-evaluates test)",
    )
    p.add_argument(
        "--save", action="store_true", help="keep the re-trained model where predict/export look for it"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads, as in the benchmark (default: 1)")
    return p


def default_name(dataset: str) -> str:
    """imdb -> imdb; owner/imdb -> imdb; data/rt_polarity/all.parquet -> rt_polarity-all."""
    path = Path(dataset)
    if path.suffix and path.parent.name:
        return f"{path.parent.name}-{path.stem}"
    return path.stem or "benchmark"


def search_settings(args: argparse.Namespace, default: str) -> SearchSettings:
    """The search settings of a parsed benchmark or suite command (``--name`` else ``default``)."""
    from textbench.search.search_settings import parse_families

    return settings_from(SearchSettings, args, families=parse_families(args.arch), name=args.name or default)


def output_dir_of(argv: list[str]) -> str:
    """The --output-dir of ``argv`` (its default otherwise), for the full-disk message."""
    for i, arg in enumerate(argv):
        if arg == "--output-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--output-dir="):
            return arg.split("=", 1)[1]
    return "runs"
