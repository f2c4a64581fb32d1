"""`ckrun ui` started for real: it listens on loopback only, and in a real browser the MLflow UI
shows two runs side by side (both tests share one server: a start costs 10-40 s).

Headless Chromium (Debian's `chromium` package) driven by Playwright for Python. Missing
Chromium is installed when we are root; if it still cannot be found the test FAILS with
the reason, it does not skip: run `pytest -m "not browser"` to leave it out on purpose.
The screenshots are written under the test's tmp folder, and copied to ``$CKRUN_SCREENSHOT_DIR``
when it is set (never into the working tree otherwise).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from system_packages import apt_install

from ckrun import tracking

pytestmark = pytest.mark.slow

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


# The compare view's metric table is two virtualised grids side by side: the metric names (each a
# "Plot chart" link) and the values, one absolutely placed cell per run. A value belongs to a
# metric when its cell sits on the same row, i.e. at the same height, as the name's cell.
METRIC_ROW_VALUES = """(metric) => {
    const link = [...document.querySelectorAll('a[title="Plot chart"]')].find(a => a.textContent.trim() === metric);
    if (!link) return null;
    const nameCell = link.parentElement;
    const top = nameCell.getBoundingClientRect().top;
    let table = nameCell;
    while (table.parentElement && table.querySelectorAll('.ReactVirtualized__Grid').length < 2) {
        table = table.parentElement;
    }
    return [...table.querySelectorAll('div[style]')]
        .filter(cell => !cell.contains(link) && !cell.querySelector('a, div'))
        .filter(cell => Math.abs(cell.getBoundingClientRect().top - top) < 1)
        .map(cell => cell.textContent.trim());
}"""


def _shown(value: float) -> str:
    """A metric as MLflow's compare view prints it (Utils.formatMetric, for |value| < 10)."""
    return f"{round(value, 3):g}"


@pytest.mark.browser
def test_experiment_page_and_compare_view_show_both_runs_and_metrics(
    mlflow_ui, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
            shown = {metric: page.evaluate(METRIC_ROW_VALUES, metric) for metric in METRICS}
            (tmp_path / "mlflow-compare.html").write_text(page.content())
            shot = tmp_path / "mlflow-compare.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    for name in names:
        assert name in runs_page
        assert name in compare_page
    # The numbers shown are the runs' logged values, each in its metric's row.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_ui.store}/mlflow.db")
    for metric in METRICS:  # one column per run, in the order the compare URL lists them
        logged = [tracking.get_run(run_id).data.metrics[metric] for run_id in mlflow_ui.run_ids.values()]
        assert shown[metric] is not None, f"no row for {metric}; page saved to {tmp_path / 'mlflow-compare.html'}"
        assert shown[metric] == [_shown(v) for v in logged], (metric, shown[metric], logged)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("CKRUN_SCREENSHOT_DIR"):
        out = Path(os.environ["CKRUN_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, out / "mlflow-compare.png")
        shutil.copyfile(tmp_path / "mlflow-runs.png", out / "mlflow-runs.png")


def test_ckrun_ui_listens_on_127_0_0_1_only_and_prints_its_address(mlflow_ui) -> None:
    from mlflow_ui_fixture import listening_addresses

    assert listening_addresses(mlflow_ui.port) == {"127.0.0.1"}
    # One server worker by default: `mlflow server` and the uvicorn it starts, and no worker
    # processes spawned by uvicorn (MLflow's default is four, each importing all of MLflow).
    import psutil

    below = [" ".join(p.cmdline()) for p in psutil.Process(mlflow_ui.process.pid).children(recursive=True)]
    assert len(below) == 2 and not any("multiprocessing" in command for command in below), below
    output = mlflow_ui.log.read_text()
    assert f"http://localhost:{mlflow_ui.port}" in output
    assert f"/#/experiments/{mlflow_ui.experiment_id}/runs" in output
