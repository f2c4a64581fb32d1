"""`ckrun run` end to end at tiny size: baseline, train, a 2-trial study, champion, report."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ckrun import tracking
from ckrun.cli import cli

pytestmark = pytest.mark.slow


def test_main_job_runs_every_stage_and_registers_the_better_model(mlflow_store: Path, tiny_ckplus: Path) -> None:
    args = ["run", "--data", str(tiny_ckplus), "--n-trials", "2", "--experiment", "main"]
    for override in ("preset=tiny", "epochs=2", "min_au_count=3", "threshold_min_positives=3"):
        args += ["--set", override]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output

    runs = tracking.search_runs("main")
    kinds = runs["tags.ckrun.kind"].value_counts().to_dict()
    assert kinds == {"baseline": 1, "train": 1, "study": 1, "trial": 2}
    assert set(runs["status"]) == {"FINISHED"}

    # The champion is whichever of the default run and the best trial validates better.
    trained = runs[runs["tags.ckrun.kind"].isin(["train", "trial"])]
    best = trained.loc[trained["metrics.objective"].idxmax(), "run_id"]
    assert tracking.alias_run_id("ckplus-resnet") == best

    report = mlflow_store / "reports" / "main" / "report.html"
    assert report.is_file() and "baseline" in report.read_text()
    assert "report: reports/main/report.html" in result.output
    for line in ("test_emotion_f1", "champion:", "models:/ckplus-resnet@champion"):
        assert line in result.output
