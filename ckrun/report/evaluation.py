"""Report sections computed from the best run's logged per-image predictions.

Uncertainty (intervals, paired tests), the AU evaluation the FACS literature asks for
(precision-recall, average precision, skew-normalised F1, threshold-F1 curves), calibration
(reliability diagrams, ECE, the fitted temperatures) and the EMFACS agreement of the two
heads. Everything is recomputed from ``predictions/{split}.csv`` with the same functions the
run used, so the report needs neither the model nor the images.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ckrun.data.labels import CK_TO_CLASS, au_code, au_label
from ckrun.emfacs import PROTOTYPES
from ckrun.report import collect
from ckrun.report.analysis import fmt
from ckrun.report.document import Block, Figure, FigureRow, Heading, Paragraph, Table
from ckrun.report.uncertainty import uncertainty_blocks
from ckrun.split_analysis import AnalysisSettings, SplitAnalysis, analyse_predictions, draw_figures

CONTRADICTIONS_SHOWN = 12


def evaluation_blocks(best: pd.Series, table: pd.DataFrame, fig_dir: Path) -> list[Block]:
    """Uncertainty, AU evaluation with calibration, and the EMFACS check of the best run."""
    blocks = uncertainty_blocks(best, table)
    run_id, name = best["run_id"], str(best["run"])
    split, pred = "test", collect.predictions(run_id, "test")
    if pred is None:
        split, pred = "val", collect.predictions(run_id, "val")
    if pred is None:
        note = Paragraph(
            f"{name} logged no per-image predictions (`predictions/test.csv`); train it again to get these."
        )
        return [*blocks, Heading(2, "Action-unit evaluation"), note]
    config = collect.run_config(run_id) or {}
    settings = AnalysisSettings(bootstrap_samples=0, calibration_bins=int(config.get("calibration_bins", 10)))
    analysis = analyse_predictions(split, pred, settings, intervals=False)
    figures = draw_figures(analysis, fig_dir / "evaluation", run=name)
    if pred.aus:
        blocks += au_blocks(analysis, figures, name)
    blocks += calibration_blocks(analysis, figures, run_id, name)
    if pred.aus:
        blocks += emfacs_blocks(analysis, figures, name)
    return blocks


def _figure(figures: dict[str, Path], key: str, caption: str) -> Figure | None:
    return Figure(figures[key], caption) if key in figures else None


def au_blocks(analysis: SplitAnalysis, figures: dict[str, Path], run: str) -> list[Block]:
    split, table = analysis.split, analysis.au.table
    frame = pd.DataFrame(
        {
            "action unit": [au_label(a) for a in table["au"]],
            "positives": [str(int(v)) for v in table["positives"]],
            "skew (neg:pos)": [fmt(v, 1) for v in table["skew"]],
            "F1 (tuned)": [fmt(v) for v in table["f1"]],
            "F1 at 0.5": [fmt(v) for v in table["f1_05"]],
            "F1 at skew 1": [fmt(v) for v in table["f1_skew_normalised"]],
            "average precision": [fmt(v) for v in table["average_precision"]],
            "ECE": [fmt(v) for v in table["ece"]],
        }
    )
    ranked = table.dropna(subset=["f1_skew_normalised"]).sort_values("f1_skew_normalised")
    text = (
        "Raw F1 falls with an AU's base rate even at the same hit and false-alarm rates, so AUs of different "
        "frequency cannot be ranked by it. Following Jeni, Cohn & De la Torre (ACII 2013), the table adds the "
        "F1 each detector would score at a skew of 1 (as many negatives as positives), 2·TPR / (1 + TPR + FPR), "
        "and the threshold-free average precision (area under the precision-recall curve)."
    )
    if len(ranked) >= 2:
        text += (
            f" At equal skew, {au_label(ranked.iloc[-1]['au'])} is detected best "
            f"({fmt(ranked.iloc[-1]['f1_skew_normalised'])}) and {au_label(ranked.iloc[0]['au'])} worst "
            f"({fmt(ranked.iloc[0]['f1_skew_normalised'])})."
        )
    blocks: list[Block] = [
        Heading(2, "Action-unit evaluation"),
        Paragraph(text),
        Table(frame, f"{run}: per-AU scores on {split}; skew = negatives per positive in the split."),
    ]
    row = [
        f
        for f in (
            _figure(figures, f"au_pr_curves_{split}.png", f"Precision-recall per AU on {split} (dashed: base rate)"),
            _figure(figures, f"au_threshold_f1_{split}.png", f"F1 against the threshold on {split} (dotted: tuned)"),
        )
        if f
    ]
    if row:
        blocks.append(FigureRow(row))
    return blocks


def calibration_blocks(analysis: SplitAnalysis, figures: dict[str, Path], run_id: str, run: str) -> list[Block]:
    split = analysis.split
    emotion_ece = analysis.metrics.get(f"{split}_emotion_ece", math.nan)
    au_ece = analysis.metrics.get(f"{split}_au_ece", math.nan)
    text = (
        f"Expected calibration error on {split} (count-weighted gap between confidence and accuracy over "
        f"{len(analysis.emotion_reliability)} equal-width bins): emotion head {fmt(emotion_ece)} (top-label: the "
        f"winning class's probability against whether it won), action units {fmt(au_ece)} (every coded image-AU "
        "pair pooled). A bar below the diagonal is overconfidence."
    )
    temperatures = collect.json_artifact(run_id, "calibration.json")
    if temperatures:
        text += (
            f" The run was temperature-scaled on validation (`calibrate=true`): emotion T = "
            f"{fmt(temperatures.get('emotion'), 2)}, AUs T = {fmt(temperatures.get('au_shared'), 2)} "
            "(T > 1 softens overconfident probabilities); the scores above are after scaling, and `ckrun predict` "
            "applies the same temperatures."
        )
    else:
        text += " The run was not temperature-scaled (`calibrate=false`)."
    blocks: list[Block] = [Heading(3, "Calibration"), Paragraph(text)]
    figure = _figure(figures, f"reliability_{split}.png", f"{run}: reliability diagrams on {split}")
    if figure:
        blocks.append(figure)
    return blocks


def _checkable(criteria: tuple[tuple[int, ...], ...], modelled: set[int]) -> str:
    missing = sorted({code for alt in criteria for code in alt} - modelled)
    if not missing:
        return "yes"
    usable = any(set(alt) <= modelled for alt in criteria)
    names = ", ".join(f"AU{c}" for c in missing)
    return f"partly ({names} not predicted)" if usable else f"no ({names} not predicted)"


def _share(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def emfacs_blocks(analysis: SplitAnalysis, figures: dict[str, Path], run: str) -> list[Block]:
    split, check = analysis.split, analysis.emfacs
    modelled = {au_code(a) for a in analysis.predictions.aus}
    prototypes = pd.DataFrame(
        {
            "CK+ emotion": [p.emotion for p in PROTOTYPES],
            "class": [CK_TO_CLASS[p.emotion] for p in PROTOTYPES],
            "must be present (Lucey et al. 2010)": [p.rule for p in PROTOTYPES],
            "EMFACS prototype": [p.prototype for p in PROTOTYPES],
            "checkable with this model's AUs": [_checkable(p.criteria, modelled) for p in PROTOTYPES],
        }
    )
    by_class = check.by_class
    frame = pd.DataFrame(
        {
            "class": by_class["class"],
            "labels: images": [str(v) for v in by_class["images_truth"]],
            "labels: consistent": [fmt(v) for v in by_class["consistency_truth"]],
            "predictions: images": [str(v) for v in by_class["images_predicted"]],
            "predictions: consistent": [fmt(v) for v in by_class["consistency_predicted"]],
        }
    )
    blocks: list[Block] = [
        Heading(2, "Do the two heads agree? (EMFACS)"),
        Paragraph(
            "EMFACS (Friesen & Ekman 1983) names the AUs that express each basic emotion; CK+ kept a sequence's "
            "emotion label only when its AUs met the minimal criteria below (Lucey et al. 2010). An image is "
            "consistent when its AU set meets a criterion of its emotion class. Only AUs the model predicts "
            "count: an alternative naming an AU the model does not predict is dropped, never shortened; "
            "intensities (AU5 at B or E) are ignored because AU outputs are binary."
        ),
        Paragraph(
            f"On the {split} labels themselves, {_share(check.truth.rate)} of {check.truth.checked} fully coded "
            f"images are consistent (how well the data follows EMFACS on these AUs); the model's predicted emotion "
            f"is supported by its own predicted AUs on {_share(check.predicted.rate)} of {check.predicted.checked} "
            f"images. {_share(check.predicted.ambiguous)} of the predicted AU sets support more than one class "
            f"(labels: {_share(check.truth.ambiguous)}), a cheap kind of agreement that firing many AUs buys."
        ),
        Table(prototypes, "Minimal criteria per CK+ emotion and the fuller EMFACS prototypes."),
        Table(frame, f"{run}: share of images whose AUs support their emotion, per class, on {split}."),
    ]
    figure = _figure(figures, f"emfacs_{split}.png", f"{run}: EMFACS consistency per class on {split}")
    if figure:
        blocks.append(figure)
    bad = check.contradictions
    if bad.empty:
        blocks.append(Paragraph("No image where the predicted AUs contradict the predicted emotion."))
    else:
        shown = bad.sort_values("emotion_prob", ascending=False).head(CONTRADICTIONS_SHOWN)
        blocks.append(
            Table(
                pd.DataFrame(
                    {
                        "image": [Path(str(p)).name for p in shown["path"]],
                        "subject": shown["subject"].astype(str),
                        "predicted emotion": [
                            f"{e} ({p:.2f})" for e, p in zip(shown["emotion"], shown["emotion_prob"], strict=True)
                        ],
                        "predicted AUs": shown["predicted_aus"],
                        "AUs support": shown["aus_support"],
                        "true emotion": shown["emotion_true"].fillna("–").astype(str),
                        "true AUs": shown["true_aus"],
                    }
                ),
                f"The {len(shown)} most confident of {len(bad)} {split} images where the heads contradict each "
                f"other (all in the run's `emfacs/contradictions_{split}.csv`).",
            )
        )
    return blocks
