"""What every measurement shares: sizes (``Profile``), the result row, the real data, running the
CLI in a fresh process and reading back its study, and the table/JSON output helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = ROOT / "perf" / "results"
CORES = os.cpu_count() or 1

# ---------------------------------------------------------------- settings


@dataclass
class Profile:
    """Sizes of one run of the benchmark (``quick`` or ``full``)."""

    name: str
    train_samples: int | None  # cap of the training split (None: all 22,500 IMDB rows)
    eval_samples: int | None  # cap of validation and test
    # (a) throughput
    steps: dict = field(default_factory=dict)  # batch size -> timed optimizer steps
    warmup_steps: int = 20
    repeats: int = 1
    threads: tuple = (1, 2)  # torch intra-op threads for (a); the harness default is all cores
    # (c) start-up: the dataset the CLI loads (warm start is dominated by imports, not data size)
    startup_train_samples: int | None = None
    # (d) scaling
    scale_trials: int = 4
    scale_max_steps: int = 600
    # (e) flagship vs. naive
    naive_trials: int = 3
    naive_max_steps: int = 2500
    naive_eval_steps: int = 500


PROFILES = {
    # Quick: the whole IMDB split (tokenized once, shared by all measurements), short trials.
    "quick": Profile(
        name="quick",
        train_samples=None,
        eval_samples=None,
        steps={8: 400, 64: 60},
        repeats=3,
        threads=(1,),
        startup_train_samples=None,
        scale_trials=8,
        scale_max_steps=1500,
        naive_trials=4,
        naive_max_steps=2500,
        naive_eval_steps=500,
    ),
    "full": Profile(
        name="full",
        train_samples=None,
        eval_samples=None,
        steps={8: 1500, 64: 300},
        repeats=5,
        threads=(1,),
        startup_train_samples=None,
        scale_trials=8,
        scale_max_steps=2500,
        naive_trials=5,
        naive_max_steps=2500,
        naive_eval_steps=500,
    ),
}


def data_root() -> str:
    root = os.environ.get("TEXTBENCH_DATA")
    if not root or not Path(root, "imdb").exists():
        sys.exit("perf needs the real data: export TEXTBENCH_DATA=/work/shared/data")
    return root


def row(
    metric: str,
    value,
    baseline=None,
    *,
    target: str = "",
    met: bool | None = None,
    unit: str = "",
    higher_is_better: bool = True,
    **raw,
) -> dict:
    """One line of the result table. ``ratio`` is value / baseline (or baseline / value when lower is
    better)."""
    ratio = None
    if isinstance(value, (int, float)) and isinstance(baseline, (int, float)) and value and baseline:
        ratio = value / baseline if higher_is_better else baseline / value
    return {
        "metric": metric,
        "value": value,
        "baseline": baseline,
        "ratio": ratio,
        "unit": unit,
        "target": target,
        "met": met,
        **raw,
    }


# ---------------------------------------------------------------- shared helpers


def prepared_data(profile: Profile, cache_dir: Path):
    """The tokenized IMDB splits at the profile's caps (cached under perf/results/cache)."""
    return prepared_data_at(cache_dir, profile.train_samples, profile.eval_samples)


def prepared_data_at(cache_dir: Path, train_samples: int | None, eval_samples: int | None):
    from textbench.core.data import prepare
    from textbench.core.settings import DataSettings

    settings = DataSettings(
        dataset="imdb",
        data_dir=data_root(),
        max_train_samples=train_samples,
        max_eval_samples=eval_samples,
        cache_dir=str(cache_dir),
    )
    return prepare(settings)


def seed_model(family: str, data, seed: int = 0):
    """The course notes' configuration of ``family``, freshly initialised from ``seed``."""
    import torch

    from textbench.core.models import build_model
    from textbench.spaces import FAMILIES

    torch.manual_seed(seed)
    return build_model(
        FAMILIES[family],
        vocab_size=len(data.tokenizer),
        num_labels=data.num_labels,
        pad_token_id=data.tokenizer.pad_token_id,
        **FAMILIES[family].notes_model_params(),
    )


def load_average() -> float:
    with contextlib.suppress(OSError):
        return os.getloadavg()[0]
    return float("nan")


def cli_args(
    out: Path,
    *,
    family: str = "cnn",
    trials: int = 1,
    train_samples: int | None = None,
    eval_samples: int | None = None,
    extra: tuple = (),
) -> list[str]:
    args = [
        "--arch",
        family,
        "--trials",
        str(trials),
        "--dataset",
        "imdb",
        "--data-dir",
        data_root(),
        "--no-mlflow",
        "--final-seeds",
        "0",
        "--output-dir",
        str(out),
        *extra,
    ]
    if train_samples:
        args += ["--max-train-samples", str(train_samples)]
    if eval_samples:
        args += ["--max-eval-samples", str(eval_samples)]
    return args


# ---------------------------------------------------------------- CLI runs and their studies


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(args: list[str], *, label: str) -> tuple[float, float, float]:
    """``python benchmark.py ARGS`` in a fresh process: (start epoch, wall seconds, CPU seconds of the
    process and its workers). Raises on failure."""
    epoch, start, cpu = time.time(), time.perf_counter(), children_cpu_seconds()
    proc = subprocess.run([sys.executable, "benchmark.py", *args], cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: benchmark.py exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return epoch, wall, cpu


def cli_study(args: list[str], storage: str, name: str, *, label: str, family: str = "cnn") -> dict:
    """Run the CLI, then read its study: totals plus where the wall time went (before the first trial
    started, trials, after the last one ended)."""
    epoch, wall, cpu = run_cli(args, label=label)
    totals = study_totals(storage, name, family)
    totals["wall_s"], totals["cpu_s"] = round(wall, 1), round(cpu, 1)
    totals["cores_busy"] = round(cpu / wall, 2)  # 2 workers on 2 free cores would approach 2
    first, last = totals.pop("_first"), totals.pop("_last")
    if first is not None and last is not None:
        totals["before_first_trial_s"] = round(first - epoch, 1)
        totals["after_last_trial_s"] = round(epoch + wall - last, 1)
    return totals


def warm_cache(out: Path, train_samples: int | None, eval_samples: int | None) -> None:
    """Make OUT/cache (the CLI's cache for --output-dir OUT) a link to the shared perf cache, tokenized
    exactly as the CLI would (same key): timed runs start warm, and each data size is tokenized once.
    An OUT/cache that exists already (a kept --work-dir) is used as it is."""
    out.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cache").mkdir(parents=True, exist_ok=True)  # a fresh clone has none: no dangling link
    if not (out / "cache").exists():
        (out / "cache").symlink_to(RESULTS / "cache", target_is_directory=True)
    prepared_data_at(out / "cache", train_samples, eval_samples)


def study_totals(storage: str, name: str, family: str = "cnn") -> dict:
    """What a finished study says: trial counts, total steps trained, best value, trial time span."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if "://" not in storage:  # the CLI's default journal file
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    study = optuna.load_study(study_name=f"{name}-{family}", storage=storage)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    try:
        best_value, best_params = study.best_value, study.best_params
    except ValueError:
        best_value, best_params = None, {}
    return {
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "steps_trained": sum(int(t.user_attrs.get("steps_trained") or 0) for t in finished),
        "best_value": best_value,
        "best_params": best_params,
        "trial_span_s": (max(ends) - min(starts)).total_seconds() if starts and ends else None,
        "trial_seconds": [
            round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
            for t in trials
            if t.datetime_start and t.datetime_complete
        ],
        "trial_params": [t.params for t in trials],
        "trial_values": [t.value for t in trials],
        "_first": min(starts).timestamp() if starts else None,
        "_last": max(ends).timestamp() if ends else None,
    }


@contextlib.contextmanager
def postgres_database(prefix: str = "textbench_perf"):
    """A scratch PostgreSQL database on 127.0.0.1 (trust auth), dropped afterwards."""
    name = f"{prefix}_{os.getpid()}"
    base = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *base, "--if-exists", name], check=True, capture_output=True)
    subprocess.run(["createdb", *base, name], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1/{name}"
    finally:
        subprocess.run(["dropdb", *base, "--force", name], capture_output=True)


# ---------------------------------------------------------------- output


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict]) -> str:
    """A markdown table: metric, value, baseline, ratio, target, met."""
    lines = ["| metric | value | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        lines.append(
            f"| {r['metric']} | {fmt(r['value'])} {r['unit']} | {fmt(r['baseline'])} {r['unit']} | "
            f"{fmt(r['ratio'])} | {r['target']} | {met} |"
        )
    return "\n".join(lines)


def environment() -> dict:
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cores": CORES,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "load_average_1m_start": load_average(),
    }
