"""What users see: ``mlflow ui`` and ``optuna-dashboard`` on a tiny finished benchmark, in headless Chromium.

- MLflow: the runs table (the link the CLI prints) lists a pruned trial as pruned, by name, once its
  study's parent run is expanded; the experiment carries the experiment kind tag.
- optuna-dashboard: the objective is named ``validation_accuracy``; a trial's curves are an artifact
  (``curves.csv``), not a user attribute; its importances are the report's, to the digit.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium, chromium-driver); skipped when
they are missing. Screenshots are left in the test's temporary folder.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import default_storage, load_study, open_storage, run_cli, search_args, stop_process_tree
from optuna.trial import TrialState

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
]
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt install chromium chromium-driver)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def finished(tiny_data_dir, tmp_path_factory):
    """A finished 8-trial CNN benchmark with its final stage and baseline (seeded: 3 trials are pruned)."""
    out = tmp_path_factory.mktemp("ui")
    args = search_args(tiny_data_dir, out, family="cnn", trials=8, max_steps=40, eval_steps=10)
    args[args.index("--final-seeds") + 1] = "1"
    args.remove("--no-baseline")
    result = run_cli(*args, "--top-k", "1", timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study("tiny-cnn", default_storage(out))
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "the seeded tiny benchmark no longer prunes a trial: raise --trials"
    link = re.search(r"then (/#/experiments/\S+)\)", result.stdout)
    assert link, result.stdout
    return out, study, pruned, link.group(1)


@pytest.fixture(scope="module")
def servers(finished, tmp_path_factory):
    """``mlflow ui`` and ``optuna-dashboard`` on free ports; stopped (with their children) afterwards."""
    out = finished[0]
    logs = tmp_path_factory.mktemp("servers")
    mlflow_port, dashboard_port = free_port(), free_port()
    commands = {
        "mlflow": [
            str(BIN / "mlflow"),
            "ui",
            "--backend-store-uri",
            f"sqlite:///{out / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
        ],
        "dashboard": [
            str(BIN / "optuna-dashboard"),
            default_storage(out),
            "--artifact-dir",
            str(out / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(dashboard_port),
        ],
    }
    procs = [
        subprocess.Popen(cmd, stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT)
        for name, cmd in commands.items()
    ]
    try:
        wait_for(f"http://127.0.0.1:{mlflow_port}/health")
        wait_for(f"http://127.0.0.1:{dashboard_port}/api/studies")
        yield f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{dashboard_port}"
    finally:
        for proc in procs:
            stop_process_tree(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_text(driver, text: str, timeout: float = 90) -> str:
    """The page's visible text once it contains ``text``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = driver.find_element("tag name", "body").text
        if text in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared; the page shows: {body[:1500]}")


def test_mlflow_runs_table_shows_the_pruned_trial(finished, servers, browser, tmp_path):
    from mlflow.tracking import MlflowClient

    out, study, pruned, link = finished
    mlflow_url, _ = servers
    experiment = MlflowClient(f"sqlite:///{out / 'mlflow.db'}").get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    browser.get(mlflow_url + link)
    wait_text(browser, "tiny-cnn")
    assert "/runs" in browser.current_url and "Run Name" in wait_text(browser, "Run Name")
    parent = browser.find_element("xpath", "//*[text()='tiny-cnn']/ancestor::*[@role='row'][1]")
    parent.find_element("xpath", ".//*[@col-id='attributes.`Run Name`']//button").click()  # expand the study
    name = f"cnn-{pruned[0].number} pruned@{pruned[0].last_step}"
    body = wait_text(browser, name)
    browser.save_screenshot(str(tmp_path / "mlflow-runs.png"))
    complete = next(t for t in study.trials if t.state == TrialState.COMPLETE)
    assert f"cnn-{complete.number}\n" in body + "\n"
    assert "cnn-0 final s1" in body and "tfidf-logreg" in body


def test_optuna_dashboard_names_the_objective_and_matches_the_report(finished, servers, browser, tmp_path):
    from textbench.reports import collect

    out, study, _, _ = finished
    _, dashboard_url = servers
    study_id = study._study_id
    browser.get(f"{dashboard_url}/dashboard/studies/{study_id}")
    body = wait_text(browser, "validation_accuracy")
    assert "Objective 0" not in body
    browser.save_screenshot(str(tmp_path / "dashboard-study.png"))

    report = collect.importance_frame(collect.load_benchmark(open_storage(default_storage(out)), "tiny"))
    expected = dict(zip(report["param"], report["importance"], strict=True))
    with urllib.request.urlopen(f"{dashboard_url}/api/studies/{study_id}/param_importances", timeout=60) as r:
        shown = {p["name"]: p["importance"] for p in json.load(r)["param_importances"][0]}
    assert shown == pytest.approx(expected, abs=1e-12)
    body = wait_text(browser, "Hyperparameter Importance")
    for value in expected.values():
        assert f"{value:.2f}" in body

    trial = study.trials[0]
    assert "curves" not in trial.user_attrs
    browser.get(f"{dashboard_url}/dashboard/studies/{study_id}/trials")
    wait_text(browser, "curves.csv")
    browser.save_screenshot(str(tmp_path / "dashboard-trials.png"))
