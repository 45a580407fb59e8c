"""Suite mode: one ordinary benchmark per dataset, the same search and budget for all, then the suite
report (which family wins across datasets, how sure).

Why a loop over ``pipeline.run_benchmark`` and nothing more: each dataset stays a benchmark of its own
(name ``SUITE-DATASET``, its report, studies and MLflow experiment, tagged ``textbench.suite``), so
``report``, ``predict`` and ``rerun`` work on it and a rerun of the suite resumes each benchmark where it
stopped; several machines given the same ``--storage``/``--tracking-uri`` cooperate exactly as they do
on one benchmark. Every dataset is loaded and checked before any training, so a bad third dataset
costs seconds and writes nothing.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

from textbench.core.errors import UsageError

SUITE_TAG = "textbench.suite"
PER_DATASET = (  # what a [[dataset]] table of a suite file may set (DataSettings fields)
    "text_column",
    "label_column",
    "no_header",
    "separator",
    "label_names",
    "max_train_samples",
    "max_eval_samples",
    "drop_invalid",
)


@dataclass
class SuiteSettings:
    """Which datasets a suite runs and how the suite report compares them."""

    datasets: str | None = None  # "imdb,rt_polarity,DIR,FILE": paths or hub ids
    suite: str | None = None  # a TOML file: name = "...", [[dataset]] path/name/columns/caps
    rope: float = 0.01  # region of practical equivalence of the Bayesian test, in accuracy (1 point)

    def __post_init__(self):
        if (self.datasets is None) == (self.suite is None):
            raise UsageError(
                "suite needs exactly one of --datasets A,B,... and --suite FILE.toml (datasets listed there)"
            )
        if not 0 <= self.rope < 0.5:
            raise UsageError(
                f"--rope is in accuracy (0.01 = 1 point) and must be in [0, 0.5), got {self.rope}"
            )


def dataset_name(path: str) -> str:
    """imdb -> imdb; sms_spam/SMSSpamCollection -> SMSSpamCollection; ag_news/test.csv -> ag_news-test."""
    p = Path(path.rstrip("/"))
    if p.suffix and p.parent.name:
        return f"{p.parent.name}-{p.stem}"
    return p.name or "data"


def entries(settings: SuiteSettings) -> tuple[str | None, list[dict]]:
    """(the suite file's name or None, one dict per dataset: path, name and DataSettings overrides)."""
    if settings.datasets is not None:
        paths = [p.strip() for p in settings.datasets.split(",") if p.strip()]
        return None, [{"path": p, "name": dataset_name(p)} for p in paths]
    path = Path(settings.suite)
    if not path.is_file():
        raise UsageError(f"suite file {settings.suite!r} does not exist: check the path")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read suite file {path}: {exc}: fix the TOML") from None
    tables = spec.get("dataset")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f'suite file {path} lists no datasets: add [[dataset]] tables with path = "..."')
    out = []
    for k, table in enumerate(tables, start=1):
        unknown = sorted(set(table) - {"path", "name", *PER_DATASET})
        if "path" not in table or unknown:
            what = f"unknown key {unknown[0]!r}" if unknown else "no path"
            raise UsageError(
                f"suite file {path}, dataset {k}: {what}; a [[dataset]] takes path, name, "
                f"{', '.join(PER_DATASET)}"
            )
        base = {**table, "path": str(table["path"])}
        if not Path(base["path"]).is_absolute() and (path.parent / base["path"]).exists():
            base["path"] = str(path.parent / base["path"])  # relative to the suite file
        out.append({"name": str(table.get("name") or dataset_name(str(table["path"]))), **base})
    return spec.get("name"), out


def plan(settings: SuiteSettings, search, data, name: str | None) -> tuple[str, list[tuple]]:
    """(suite name, [(dataset label, SearchSettings, DataSettings)]): each dataset's settings, checked."""
    file_name, listed = entries(settings)
    suite = name or file_name or "suite"
    labels = [e["name"] for e in listed]
    twice = sorted({n for n in labels if labels.count(n) > 1})
    if twice:
        raise UsageError(f'suite lists dataset name {twice[0]!r} twice: give each a name = "..." of its own')
    out = []
    for e in listed:
        overrides = {k: e[k] for k in PER_DATASET if k in e}
        d = dataclasses.replace(data, dataset=e["path"], **overrides)
        s = dataclasses.replace(search, name=f"{suite}-{e['name']}")
        out.append((e["name"], s, d))
    return suite, out


def budget_share(budget: float, members: list[tuple], k: int) -> float:
    """Dataset ``k``'s part of a suite's ``--time-budget``: what the datasets before it left, split
    evenly over it and the ones after it (a dataset that finished early passes its time on). The
    datasets' running times come from their own ``time_spent.json`` (``search.spent``), so a resumed
    suite gives the same shares and counts only time spent running."""
    from textbench.search.spent import SpentClock

    spent = sum(SpentClock(s.run_dir).before for _, s, _ in members[: k - 1])
    return max(budget - spent, 1.0) / (len(members) - k + 1)


def validate(members: list[tuple]) -> None:
    """Load and check every dataset (and the tokenizer) before any training; writes nothing."""
    from textbench.core.data import load

    for k, (label, _, data) in enumerate(members, start=1):
        try:
            load(data)
        except UsageError as exc:
            raise UsageError(f"suite dataset {k} of {len(members)} ({label}): {exc}") from None


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def progress_line(suite: str, k: int, n: int, label: str, elapsed: float, durations: list[float]) -> str:
    """``suite S: dataset k of n (label), elapsed ..., ETA ...`` (the ETA: mean time per dataset so far)."""
    eta = (
        f"ETA {_clock(sum(durations) / len(durations) * (n - k + 1))}" if durations else "ETA after the first"
    )
    return f"suite {suite}: dataset {k} of {n} ({label}), elapsed {_clock(elapsed)}, {eta}"


def tag_experiment(search, suite: str) -> None:
    """Tag the dataset's MLflow experiment with the suite's name (a tracking problem only warns)."""
    if not search.mlflow:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=search.tracking_uri)
        found = client.get_experiment_by_name(search.name)
        if found is not None:
            client.set_experiment_tag(found.experiment_id, SUITE_TAG, suite)
    except Exception as exc:  # noqa: BLE001 - the benchmark is done; the tag is a convenience
        print(
            f"warning: could not tag MLflow experiment {search.name!r} with the suite: {exc}", file=sys.stderr
        )


def describe(search, train, data) -> list[str]:
    """The settings every dataset shares, as the report states them."""
    caps = f"train rows capped at {data.max_train_samples}" if data.max_train_samples else "all train rows"
    evals = f", validation/test capped at {data.max_eval_samples}" if data.max_eval_samples else ""
    return [
        f"families {', '.join(search.families)}",
        f"{search.trials} trials per family ({search.sampler} sampler, {search.pruner} pruner)",
        f"final stage: top {search.top_k} x {search.final_seeds} seeds",
        f"budget {train.max_steps} steps, eval every {train.eval_steps}, batch {train.batch_size}, "
        f"patience {train.patience}, {train.precision}",
        f"{caps}{evals}, max length {data.max_length}, seed {search.seed}",
        *(
            [f"--time-budget {_clock(search.time_budget)} for the whole suite, shared out dataset by dataset"]
            if search.time_budget is not None
            else []
        ),
    ]


def run_suite(settings: SuiteSettings, search, data, train, *, name: str | None = None, **kwargs) -> int:
    """Validate every dataset, run (or resume) one benchmark each, then write the suite report.
    ``kwargs`` go to ``run_benchmark`` (workers, threads, verbose, baseline). Exit code as a benchmark's."""
    suite, members = plan(settings, search, data, name)
    validate(members)
    from textbench.pipeline import run_benchmark

    start, durations = time.monotonic(), []
    for k, (label, s, d) in enumerate(members, start=1):
        print(progress_line(suite, k, len(members), label, time.monotonic() - start, durations), flush=True)
        began = time.monotonic()
        if search.time_budget is not None:
            s = dataclasses.replace(s, time_budget=budget_share(search.time_budget, members, k))
            print(f"suite {suite}: {label} gets {_clock(s.time_budget)} of the --time-budget", flush=True)
        code = run_benchmark(s, d, train, **kwargs)
        if code:
            print(
                f"suite {suite}: stopped at dataset {k} of {len(members)} ({label}); finished work is kept: "
                "rerun the same command to resume the suite",
                file=sys.stderr,
            )
            return code
        durations.append(time.monotonic() - began)
        tag_experiment(s, suite)
    from textbench.reports.suite import build_suite_report
    from textbench.search.study import make_storage

    page = build_suite_report(
        make_storage(search.storage),
        {label: s.name for label, s, _ in members},
        Path(search.output_dir) / suite,
        suite,
        rope=settings.rope,
        settings=describe(search, train, data),
    )
    print(
        f"suite {suite}: {len(members)} datasets in {_clock(time.monotonic() - start)}; suite report: {page}"
    )
    return 0
