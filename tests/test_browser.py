"""End to end in a real browser: the MLflow UI started by `ckrun ui` shows two runs side by side.

Headless Chromium (Debian's `chromium` package) driven by Playwright for Python. Missing
Chromium is installed when we are root; if it still cannot be found the test FAILS with
the reason, it does not skip: run `pytest -m "not browser"` to leave it out on purpose.
The compare-view screenshot goes to ``$CKRUN_SCREENSHOT_DIR`` (default
``reports/screenshots/``) and a copy stays under the test's tmp folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from system_packages import apt_install

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]
METRICS = ("val_emotion_f1", "test_au_f1")


def _ensure_chromium() -> Path:
    """Debian's chromium, installed with apt when missing and we are root; else a failure saying how."""
    if apt_install("chromium", CHROMIUM.is_file):
        return CHROMIUM
    pytest.fail(
        f"{CHROMIUM} not found and could not be installed (needs root and apt-get: `apt-get install -y chromium`); "
        'deselect this test explicitly with -m "not browser"',
        pytrace=False,
    )


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (or pip install playwright)", pytrace=False)
    return sync_playwright


def _screenshot_dir() -> Path:
    return Path(os.environ.get("CKRUN_SCREENSHOT_DIR") or REPO / "reports" / "screenshots")


def test_experiment_page_and_compare_view_show_both_runs_and_metrics(mlflow_ui, tmp_path: Path) -> None:
    from mlflow_ui_fixture import BASELINE_RUN, TRAIN_RUN

    from ckrun.ui import compare_url, experiment_url

    chromium = _ensure_chromium()
    sync_playwright = _playwright()
    names = (TRAIN_RUN, BASELINE_RUN)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1800})
            page.set_default_timeout(90_000)

            page.goto(experiment_url(mlflow_ui.url, mlflow_ui.experiment_id), wait_until="domcontentloaded")
            for name in names:
                page.get_by_text(name, exact=True).first.wait_for()
            runs_page = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "mlflow-runs.png"))

            page.goto(compare_url(mlflow_ui.url, mlflow_ui.experiment_id, list(mlflow_ui.run_ids.values())))
            page.get_by_text("Comparing 2 Runs").first.wait_for()
            for metric in METRICS:
                page.get_by_text(metric, exact=True).first.wait_for()
            compare_page = page.inner_text("body")
            shot = tmp_path / "mlflow-compare.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    for name in names:
        assert name in runs_page
        assert name in compare_page
    for metric in METRICS:
        assert metric in compare_page
    assert shot.read_bytes().startswith(b"\x89PNG")
    out = _screenshot_dir()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, out / "mlflow-compare.png")
    shutil.copyfile(tmp_path / "mlflow-runs.png", out / "mlflow-runs.png")
