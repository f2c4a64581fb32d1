"""`generate_report`: collect runs from MLflow, analyse them, render report.md and report.html.

The story a report tells, in order: how the runs compare, which overfit, underfit or
balance and which one wins (and why), what the winner gets right and wrong, how sure those
scores are (intervals, paired tests), how its AU detectors and probabilities hold up and
whether its two heads agree (EMFACS), how cross-validation folds spread, which
hyperparameters mattered, whether it serves every group equally, and what the data itself
allows one to conclude.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ckrun import outdir, tracking
from ckrun.console import warn
from ckrun.errors import CkrunError
from ckrun.report import collect, sections
from ckrun.report.dataset import dataset_blocks, describe_data
from ckrun.report.document import Bullets, Document, Heading, Paragraph, to_html, to_markdown
from ckrun.report.evaluation import evaluation_blocks
from ckrun.report.explanations import explanation_blocks
from ckrun.report.groups import GroupScores, demographic_columns, predict_groups
from ckrun.report.study import param_importances
from ckrun.report.uncertainty import cv_blocks

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RUNS_CSV = "runs.csv"


def default_out(experiment: str | None) -> Path:
    """``reports/<experiment>`` with the name made safe for a folder."""
    name = experiment or tracking.DEFAULT_EXPERIMENT
    return Path("reports") / (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment")


def generate_report(
    *,
    experiment: str | None = None,
    study: str | None = None,
    storage: str | None = None,
    out: Path | str | None = None,
    data: Path | str | None = None,
) -> Path:
    """Write ``report.md``, a self-contained ``report.html`` and ``runs.csv``; returns the HTML path.

    `data` overrides the dataset the dataset and per-group sections describe (split with the
    best run's config); by default they use the best run's own ``data/split.csv``. The report
    is built aside and moved into `out` whole, replacing only what the previous report wrote
    (`ckrun.outdir`).
    """
    tracking.check_store(writes=False)
    out_dir = Path(out) if out is not None else default_out(experiment)
    with outdir.staged(out_dir) as staging:
        runs = collect.collect_runs(experiment, study)
        _write_report(staging, runs, study, storage, data)
    return out_dir / REPORT_HTML


def _write_report(
    out_dir: Path, runs: collect.RunSet, study: str | None, storage: str | None, data: Path | str | None
) -> None:
    """Every file of the report, into `out_dir` (a fresh staging folder)."""
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    notes = list(runs.left_out)
    notes += [
        f"{name} trained on the validation images too (`ckrun tune --retrain`): its val scores are not held out, "
        "so it is not ranked for the best run."
        for name in runs.table.loc[~collect.held_out_val(runs.table), "run"]
    ]

    best = collect.best_run(runs.table)
    manifest, source = _manifest(best, runs.table, data, notes)
    majority = collect.majority_row(manifest) if manifest is not None else None
    obj_kind = _objective_kind(best)
    diagnoses = {rid: collect.diagnosis(rid) for rid in runs.table["run_id"]}

    doc = Document(f"ckrun report: {runs.experiment}" + (f" / study {study}" if study else ""))
    doc.add(Paragraph(_preamble(runs, study)))
    doc.blocks += sections.comparison_blocks(runs, majority, fig_dir, obj_kind)
    doc.blocks += sections.analysis_blocks(runs, diagnoses, best, majority, obj_kind)
    if best is not None:
        doc.blocks += sections.best_run_blocks(best, runs.table, fig_dir)
        doc.blocks += evaluation_blocks(best, runs.table, fig_dir)
        doc.blocks += explanation_blocks(best, fig_dir)
    doc.blocks += cv_blocks(runs.table)
    importances, study_note = param_importances(study, storage) if study else (None, None)
    doc.blocks += sections.hyperparameter_blocks(runs.table, best, fig_dir, obj_kind, importances, study, study_note)
    if manifest is not None and best is not None:
        scores = _group_scores(best, manifest, notes)
        if scores is not None and scores.tables:
            doc.blocks += sections.group_blocks(scores, str(best["run"]), fig_dir)
    if manifest is not None:
        config = collect.run_config(str(best["run_id"])) if best is not None else None
        desc = describe_data(manifest, out_dir / "dataset", config)
        doc.blocks += dataset_blocks(desc, source=source)
    if notes:
        doc.add(Heading(2, "Notes"), Bullets(notes))

    runs.table.to_csv(out_dir / RUNS_CSV, index=False)
    (out_dir / REPORT_MD).write_text(to_markdown(doc, out_dir))
    (out_dir / REPORT_HTML).write_text(to_html(doc))


def _preamble(runs: collect.RunSet, study: str | None) -> str:
    counts = runs.table["kind"].value_counts().to_dict() if not runs.table.empty else {}
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no runs"
    scope = f" and Optuna study '{study}'" if study else ""
    return (
        f"Generated {datetime.now():%Y-%m-%d %H:%M} by `ckrun report` from MLflow store "
        f"`{tracking.redact_uri(tracking.configure())}`, experiment '{runs.experiment}'{scope}: {parts}. "
        "Reports are regenerated from the tracking store, never edited by hand."
    )


def _objective_kind(best: pd.Series | None) -> str:
    kind = None if best is None else best.get("objective_kind")
    if not isinstance(kind, str) or not kind:
        return "mean"
    if kind == "mean" and best is not None and _missing(best.get("val_au_f1")):
        return "emotion"  # a run without AU outputs optimises emotion alone
    return kind


def _missing(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _manifest(
    best: pd.Series | None, table: pd.DataFrame, data: Path | str | None, notes: list[str]
) -> tuple[pd.DataFrame | None, str]:
    """The data the report describes: `data` split like the best run, else the run's split.csv."""
    run_ids = ([best["run_id"]] if best is not None else []) + list(table["run_id"])
    if data is not None:
        from ckrun.config import TrainConfig, build_config
        from ckrun.data.loader import prepare_data, prepare_for_config

        config = next((c for c in (collect.run_config(r) for r in run_ids[:1]) if c), None)
        if config:
            cfg = build_config({k: v for k, v in config.items() if k in TrainConfig.model_fields})
            prepared = prepare_for_config(data, cfg, progress=False)
        else:
            prepared = prepare_data(data, progress=False)
        if best is not None and table.shape[0] and prepared.digest != _param(best["run_id"], "data_digest"):
            notes.append(f"--data {data} differs from what the best run trained on (digest {prepared.digest}).")
        return prepared.manifest, f"{prepared.source} (digest {prepared.digest})"
    for run_id in dict.fromkeys(run_ids):
        manifest = collect.split_manifest(run_id)
        if manifest is not None:
            name = table.loc[table["run_id"] == run_id, "run"]
            label = name.iloc[0] if len(name) else run_id
            return manifest, f"the split the run {label} trained on (its `data/split.csv` artifact)"
    if run_ids:
        notes.append("No run logged `data/split.csv`; pass --data to describe the dataset.")
    return None, ""


def _param(run_id: str, key: str) -> str | None:
    return tracking.get_run(run_id).data.params.get(key)


def _group_scores(best: pd.Series, manifest: pd.DataFrame, notes: list[str]) -> GroupScores | None:
    if not demographic_columns(manifest):
        return None
    model_uri = tracking.run_model_uri(best["run_id"])
    if model_uri is None:
        notes.append(f"Per-group metrics skipped: run {best['run']} logged no model (log_model=false).")
        return None
    missing = [p for p in manifest["path"].astype(str) if not Path(p).is_file()]
    if missing:
        notes.append(
            f"Per-group metrics skipped: {len(missing)} image(s) of the run's data are gone, e.g. {missing[0]}."
        )
        return None
    try:
        return predict_groups(manifest, lambda: tracking.load_predictor(model_uri))
    except CkrunError as exc:
        warn(f"per-group metrics skipped: {exc}")
        notes.append(f"Per-group metrics skipped: {exc}")
        return None
