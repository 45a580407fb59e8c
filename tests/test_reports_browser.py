"""The report in a real browser: headless Chromium loads every image and logs no console error.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium, chromium-driver) and the
``selenium`` package from the dev extra; skipped, with the reason, when the browser is not installed
(failed instead under ``CI=true``).
"""

import shutil
from pathlib import Path

import pytest
from helpers import skip_unless_ci

from textbench.reports import build_report

try:
    from tests.test_reports_fixtures import make_study, sqlite_storage
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from test_reports_fixtures import make_study, sqlite_storage

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
]
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _needs_chromium():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        skip_unless_ci(
            f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} "
            "(apt install chromium chromium-driver)"
        )


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_report_loads_all_images_without_console_errors(tmp_path, browser):
    url, store = sqlite_storage(tmp_path / "s.db")
    for family in ("cnn", "rnn"):  # a hostile benchmark name and label: they must stay text
        make_study(store, HOSTILE, family, n_trials=8, labels=[HOSTILE, "pos"])
    page = build_report(url, HOSTILE, tmp_path / "out")

    browser.get(page.as_uri())
    state = browser.execute_script("return document.readyState")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
    )
    scripts = browser.execute_script("return document.scripts.length")
    heading = browser.execute_script("return document.querySelector('h1').textContent")
    logs = browser.get_log("browser")

    assert state == "complete"
    assert len(images) == page.read_text().count("<img ") >= 8  # every figure the page holds
    assert [alt for alt, complete, width in images if not (complete and width > 0)] == []
    assert scripts == 0 and heading == f"textbench report: {HOSTILE}"
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "ERROR")] == []
