"""A benchmark as one library function: studies -> final stage -> baseline -> summary -> tracking ->
registry -> report.

``run_benchmark`` is what the command line calls and what each ``--workers`` helper process runs
(``helper_main``): a helper searches and shares the final stage, then stops; the first process
(worker 0) also finishes the final stage, fits the baseline, prints the summary, logs the chosen
configurations, registers the models and writes the report. It sits above ``search`` and
``reports`` (which never import each other) and imports them only after logging is set up, so the
libraries' import-time chatter is silenced.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from textbench.core.errors import UsageError
from textbench.core.settings import DataSettings, TrainSettings
from textbench.search.search_settings import SearchSettings
from textbench.search.workers import Workers, gpu_ids, pin_device

log = logging.getLogger("textbench")


@dataclass
class Helper:
    """What makes a process a ``--workers`` helper: its index, the GPUs shared round-robin, the
    parent's go signal (set once the parent's setup made the storage and the cache) and its pid."""

    index: int
    gpus: list[str]
    ready: object  # multiprocessing.Event
    parent: int

    def wait_for_go(self) -> None:
        while not self.ready.wait(1.0):
            if os.getppid() != self.parent:  # the parent died before saying go
                sys.exit(1)


def run_benchmark(
    search: SearchSettings,
    data: DataSettings,
    train: TrainSettings,
    *,
    workers: int = 1,
    threads: int = 1,
    verbose: bool = False,
    baseline: bool = True,
    helper: Helper | None = None,
) -> int:
    """Run (or resume) the whole benchmark; the exit code: 0 done, 3 a family has no result
    (``reports.failures``), 130 interrupted, else a helper's."""
    gpus = gpu_ids() if helper is None else helper.gpus
    if helper is None:  # the memory check shares the machine between the workers (core/memory.py)
        os.environ["TEXTBENCH_WORKERS"] = str(workers)
    pin_device(0 if helper is None else helper.index, gpus)  # before anything starts CUDA
    from textbench.search.logs import configure_logging

    configure_logging(verbose)  # the heavy imports start here
    from textbench.core.training import set_threads
    from textbench.search.final import run_final
    from textbench.search.studies import open_searches, run_searches, setup

    set_threads(threads)
    if helper is not None:
        helper.wait_for_go()
        bench = setup(search, data, train)
        bench.worker = helper.index
        for family, study in run_searches(bench).items():
            run_final(
                study, family, search=search, data=bench.data, train=train, tracker=bench.tracker, share=True
            )
        return 0

    if search.finetune:  # a missing model is refused here, before anything is written or trained
        from textbench.core.finetune import resolve_model

        resolve_model(search.finetune, data.data_dir)
    from textbench.core.urls import redact
    from textbench.search.overall import Overall
    from textbench.search.spent import SpentClock

    clock = SpentClock(search.run_dir)
    clock.start()  # the budget counts this run from here, plus what earlier runs spent
    log.info("workers: %d, storage: %s", workers, redact(search.storage))
    pool = (
        Workers(helper_main, (search, data, train), workers, threads, gpus, verbose) if workers > 1 else None
    )

    tune = None  # the --finetune stage's plan: its cost is measured before the searches start
    keys: dict[str, str] = {}  # each family's key in this machine's record of step rates

    def plan(bench) -> None:  # after the data is checked and tokenized, before anything is created
        nonlocal tune, keys
        bench.overall = Overall(
            families=search.families,
            trials=search.trials,
            final_runs=(search.top_k + search.reference) * search.final_seeds,  # the notes' configuration too
            baseline=baseline,
            max_steps=train.max_steps,
            train_rows=len(bench.data.splits["train"]),
            workers=workers,
        )
        if search.finetune:
            from textbench.search.finetune_stage import plan_finetune

            set_threads(threads * workers)  # timed as it will run: alone, after the helpers end
            tune = plan_finetune(search, data, train, bench.data, bench.storage)
            set_threads(threads)
            bench.overall.finetune_seconds = tune.estimated_seconds  # in every ETA (and plan) until it ran
        from textbench.search.rate_record import record_keys

        keys = record_keys(bench, data.max_length)
        plan_budget(bench, clock, keys)  # a refused budget leaves nothing behind: no store, run or time spent

    try:
        bench = setup(search, data, train, before_create=plan)
        log.info("data: %s", {k: v for k, v in bench.data.describe().items() if k != "labels"})
        searches = open_searches(bench)  # before the helpers start: they read worker 0's plan
    except KeyboardInterrupt:  # in the calibration or the data preparation: nothing is lost
        if pool is not None:
            pool.abort()
        print(
            f"\ninterrupted before the searches: rerun the same command to start benchmark '{search.name}'",
            file=sys.stderr,
        )
        return 130
    except BaseException:
        if pool is not None:
            pool.abort()
        raise
    tune_failed = None

    def final_stage(study, family, share=False):
        run_final(
            study,
            family,
            search=search,
            data=bench.data,
            train=train,
            tracker=bench.tracker,
            overall=bench.overall,
            share=share,
        )

    try:
        if pool is not None:
            pool.go()
        studies = run_searches(bench, searches)  # with helpers, this process is worker 0
        if bench.budget is not None:  # the final stage that fits what the searches left (the helpers wait)
            fit_final_stage(bench, studies)
        if pool is not None:
            for family, study in studies.items():  # the final stage, split with the helpers
                final_stage(study, family, share=True)
            code, problem = pool.join()
            if code:
                print(
                    f"error: {problem}; finished trials are kept: rerun the same command to resume",
                    file=sys.stderr,
                )
                return code
        for family, study in studies.items():
            final_stage(study, family)
        fitted = None
        if baseline:
            from textbench.search.baseline_stage import (
                run_baseline,
            )  # scikit-learn's models: imported when used

            bench.overall.phase = "baseline"
            log.info("%s", bench.overall.line())
            fitted = run_baseline(
                studies, bench.data, name=search.name, max_length=data.max_length, tracker=bench.tracker
            )
        if tune is not None:
            from textbench.search.finetune_stage import run_finetune

            bench.overall.phase = "fine-tune"
            log.info("%s", bench.overall.line())
            set_threads(threads * workers)  # the helpers are done: every core is the fine-tune's
            try:
                run_finetune(studies, tune, search=search, train=train, tracker=bench.tracker)
            except (RuntimeError, ValueError, OSError) as exc:  # NaN loss, out of memory, a bad checkpoint
                tune_failed = (
                    f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                )
                log.error(
                    "the --finetune reference failed (%s): the report is written without it", tune_failed
                )
            bench.overall.finetune_seconds = 0.0
    except KeyboardInterrupt:
        if pool is not None:
            pool.interrupt()
        print(
            f"\ninterrupted: finished trials are kept; rerun the same command to resume benchmark "
            f"'{search.name}'",
            file=sys.stderr,
        )
        return 130
    except BaseException:
        if pool is not None:
            pool.abort()
        raise
    finally:
        from textbench.search.rate_record import record_rates

        clock.save()  # interrupted or not: a resumed run's budget counts this run's time
        record_rates(bench, keys, searches)
        if bench.budget is not None:  # interrupted too: the resumed report shows this run's plans
            record = bench.budget.record()
            for study in bench.budget.studies.values():
                study.set_user_attr("time_budget", record)
    try:
        finish(bench, studies, fitted)
    except KeyboardInterrupt:  # every result is stored: only the summary, MLflow's choice or the report
        clock.save()
        print(
            f"\ninterrupted while writing the results: every run is kept; rerun the same command to finish "
            f"benchmark '{search.name}'",
            file=sys.stderr,
        )
        return 130
    clock.save()
    if bench.budget is not None:
        log.info("time budget: %s spent of %s", *bench.budget.spent_of())
    from textbench.reports.failures import FAILED_EXIT, failed_families, failure_line

    failed = failed_families(studies, final_requested=search.final_seeds > 0)
    if failed:  # a report is written, but a family has no result: not a success
        print(failure_line(search.name, failed), file=sys.stderr)
        return FAILED_EXIT
    if tune_failed:  # the families' results stand; the reference row is missing: not a success either
        print(
            f"error: benchmark '{search.name}': the --finetune {search.finetune} reference failed "
            f"({tune_failed}); rerun the same command to try it again (finished work is kept)",
            file=sys.stderr,
        )
        return FAILED_EXIT
    return 0


def runs_notes_as_calibrated(family: str, fix: list[str]) -> bool:
    """Whether the reference trial runs the course notes' configuration that the calibration timed:
    not where --fix pins some of its values or the space leaves some out (``reference_params``)."""
    from textbench.search.fixed import parse_fixed
    from textbench.search.reference import reference_params
    from textbench.spaces import get as get_family

    params, skipped = reference_params(family, parse_fixed(family, fix))
    return not skipped and params == dict(get_family(family).notes_config)


def plan_budget(bench, clock, keys: dict[str, str] | None = None) -> None:
    """Know every family's rate (the first ETA needs it: measured on a resumed study's trials,
    recorded on this machine by an earlier benchmark, else calibrated) and, with --time-budget, plan the
    trials per family; a budget that cannot hold one trial per family plus the final stage (and the
    --finetune reference, ``Overall.finetune_seconds``) is refused here, before any trial runs."""
    from textbench.core.durations import format_duration
    from textbench.search.budget import Budget
    from textbench.search.calibrate import seconds_per_step
    from textbench.search.rate_record import FILE, converge_rule, expected_trials, load_recorded
    from textbench.search.studies import measure_stored

    overall, search = bench.overall, bench.search
    measure_stored(bench)  # a resume: its trials' rates and the final runs already done
    unmeasured = {f: key for f, key in (keys or {}).items() if not overall.steps.get(f)}
    found = load_recorded(overall, Path(search.output_dir) / FILE, unmeasured)
    if found:
        log.info(
            "step rates recorded on this machine (%s), no calibration needed: %s",
            Path(search.output_dir) / FILE,
            ", ".join(
                f"{f} {e['seconds_per_step']:.4f} s/step, {e['trial_steps']:.0f} steps a trial "
                f"({e['trials']} trials, {e.get('recorded', '?')})"
                for f, e in found.items()
            ),
        )
    if search.stop_when_converged:  # where the searches stop is unknown: the ETA is a range, or recorded
        overall.earliest = search.min_trials
        for family, entry in found.items():
            if (trials := expected_trials(entry, converge_rule(search))) is not None:
                overall.expected[family] = trials
        for family, trials in overall.expected.items():  # what the ETA counts
            log.info("%s converged after %d trials in that run: the ETA expects as many", family, trials)
    for family in search.families:
        if overall.steps.get(family) or family in found:  # measured on its own trials, or recorded
            continue
        rate, notes = seconds_per_step(family, bench.data, bench.train, seed=search.seed)
        if rate is not None:
            overall.calibrated[family] = rate
        if notes is not None and runs_notes_as_calibrated(family, search.fix):
            overall.calibrated_reference[family] = notes
    if search.time_budget is None:
        return
    splits = bench.data.splits
    budget = Budget(
        search.time_budget,
        clock,
        overall,
        cap=search.trials,
        finetune=search.finetune,
        top_k=search.top_k,
        seeds=search.final_seeds,
        reference=search.reference,
        test_per_validation=len(splits["test"]) / max(len(splits["validation"]), 1),
    )
    if overall.stopped and set(overall.stopped) == set(search.families):  # resumed after the searches
        budget.ceiling = max(overall.stopped.values())  # the budget ended: the final stage finishes
        log.info(
            "time budget: the searches ended at %d trials per family before this run; the final stage "
            "fitted then finishes",
            budget.ceiling,
        )
    plan = budget.replan()
    if not plan.fits and not any(overall.finished.values()):
        raise UsageError(budget.refusal())
    if not plan.fits:  # a resume past its budget: what was started is finished, nothing more is searched
        log.warning(
            "time budget: %s of %s already spent; the searches stop at %d trials per family and the rest "
            "of the final stage runs (about %s, over the budget)",
            *budget.spent_of(),
            plan.trials,
            format_duration(plan.reserved),
        )
    bench.budget = budget
    overall.extra = budget.left
    log.info("time %s: %s", budget.left(), plan.reason())


def fit_final_stage(bench, studies: dict) -> None:
    """Under --time-budget: the final stage's configurations x seeds that fit what is left, stored on
    every study (``final_plan``) for ``search.final`` and the helpers; a cut is said and reported."""
    from textbench.search.budget import kept_stop
    from textbench.search.runner import count_trials

    search = bench.search
    if all(kept_stop(study, search.time_budget) for study in studies.values()):  # a resume: it stands
        fit = next(iter(studies.values())).user_attrs["final_plan"]
        bench.budget.final = fit
        bench.overall.final_runs = (fit["top_k"] + search.reference) * fit["final_seeds"]
        log.info(
            "time budget: the final stage fitted before the interruption stands (top %d x %d seeds)",
            fit["top_k"],
            fit["final_seeds"],
        )
        return
    fit = bench.budget.final_stage(
        {f: count_trials(study).complete for f, study in studies.items()},
        search.top_k,
        search.final_seeds,
        search.reference,
    )
    for study in studies.values():
        study.set_user_attr("final_plan", fit)
    bench.overall.final_runs = (fit["top_k"] + search.reference) * fit["final_seeds"]  # the ETA's count
    if fit.get("why"):
        log.warning("time budget: %s", fit["why"])


def finish(bench, studies: dict, baseline: dict | None) -> None:
    """The end of a benchmark: the summary, what tuning bought, MLflow (chosen configurations and the
    Model Registry) and the report, each printed with where to find it."""
    from textbench.core.urls import redact
    from textbench.reports import build_report, collect, summary, tuning
    from textbench.search.studies import artifact_dir
    from textbench.search.tracking import runs_table_path

    search, tracking = bench.search, bench.tracker
    print()
    rows = summary.summary_rows(studies, baseline)
    print(summary.format_summary(rows))
    for row in rows if tracking is not None else []:
        if row["arch"] in studies:  # the chosen configuration on each study's parent run, as in the report
            tracking.chosen_config(studies[row["arch"]], row)
    gains = tuning.for_benchmark(collect.load_benchmark(bench.storage, search.name))
    if not gains.empty:
        print(
            "\nwhat tuning bought over the course notes' settings (test accuracy; gain = chosen - notes, "
            "paired on the same test examples, Holm-adjusted p):"
        )
        print(tuning.format_table(gains))
        print(tuning.sentence(gains))
        for _, row in gains.iterrows():
            if tracking is not None and row["family"] in studies:
                tracking.tuning_gain(studies[row["family"]], row)
    if tracking is not None:
        state = f"BROKEN ({tracking.broken})" if tracking.broken else "ok"
        local = not tracking.uri.startswith(("http", "databricks"))  # a server has its own UI
        ui = f"mlflow ui --backend-store-uri {shlex.quote(redact(tracking.uri))}, then " if local else ""
        print(
            f"MLflow: {redact(tracking.uri)} experiment '{search.name}' [{state}] "
            f"(runs table: {ui}{runs_table_path(tracking.experiment_id)})"
        )
        if not tracking.broken:
            from textbench.use import register_models

            uris = register_models(search.storage, search.name, search.output_dir, tracking.uri)
            print(f"MLflow Model Registry: {', '.join(uris) or 'nothing registered'}")
    print(
        f"Optuna: {redact(search.storage)} (optuna-dashboard {shlex.quote(redact(search.storage))} "
        f"--artifact-dir {shlex.quote(str(artifact_dir(search)))})"
    )
    print(f"report: {build_report(bench.storage, search.name, search.run_dir)}")


def helper_main(
    settings: tuple, index: int, threads: int, gpus: list[str], verbose: bool, ready, parent: int
) -> None:
    """One ``--workers`` helper process (spawned): the same benchmark, as helper ``index``."""
    signal.signal(signal.SIGTERM, _sigterm)
    search, data, train = settings
    try:
        from textbench.search.plugins import load_families

        load_families()  # the parent's --family-module files, from $TEXTBENCH_FAMILY_MODULES
        run_benchmark(
            search, data, train, threads=threads, verbose=verbose, helper=Helper(index, gpus, ready, parent)
        )
    except KeyboardInterrupt:
        sys.exit(130)
    except UsageError as exc:
        print(f"error: worker {index}: {exc}", file=sys.stderr)
        sys.exit(2)


def _sigterm(signum, frame):
    raise KeyboardInterrupt
