"""`ckrun evaluate`: score a logged model on a dataset split, as its own MLflow run.

The model's logged config supplies the split rule (seed, fractions, peak frames), so
"test" means the same subjects the model was tested on when DATA is the training data,
and a held-out split of any other dataset laid out like CK+.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ckrun import names, tracking
from ckrun.config import TrainConfig, build_config
from ckrun.console import echo, warn
from ckrun.data.loader import prepare_for_config
from ckrun.data.pipeline import encode_labels
from ckrun.errors import DataError
from ckrun.metrics import emotion_targets, evaluate_split, majority_accuracy
from ckrun.predictions import prediction_table
from ckrun.run_logging import log_evaluation_artifacts, timestamp
from ckrun.split_analysis import AnalysisSettings, attach_analysis


@dataclass
class EvaluationResult:
    run_id: str
    metrics: dict[str, float]


def _model_config(config: dict) -> TrainConfig:
    known = {k: v for k, v in config.items() if k in TrainConfig.model_fields}
    return build_config(known) if known else build_config({})


def _seen_in_training(source_run: str | None, digest: str) -> str | None:
    """A warning when a cross-validation's fold ensemble is scored on the data it was fitted on.

    Its folds' test splits cover every subject, so every image was in the training split of all
    but one fold model: whichever split is asked for, the scores are inflated.
    """
    if not source_run:
        return None
    run = tracking.get_run(source_run)
    if run.data.tags.get(tracking.KIND_TAG) != "cv" or run.data.params.get("data_digest") != digest:
        return None
    folds = run.data.params.get("cv_folds", "K")
    return (
        f"this model averages the {folds} fold models of cross-validation run {source_run}, fitted on this very "
        f"data: each image was in the training split of all but one of them, so these scores are inflated; "
        "evaluate it on other data"
    )


def evaluate_model_uri(
    model_uri: str,
    data: Path | str | None,
    *,
    split: str = "test",
    experiment: str | None = None,
    sequences: bool = False,
) -> EvaluationResult:
    import tempfile

    predictor = tracking.load_predictor(model_uri)
    cfg = _model_config(predictor.config)
    prepared = prepare_for_config(data, cfg)
    manifest = prepared.manifest
    part = manifest if split == "all" else manifest.loc[manifest["split"] == split]
    if part.empty:
        raise DataError(f"split {split!r} of {prepared.source} holds no images")
    prep = predictor.prep
    labels = encode_labels(part, prep.aus)
    if not labels["emotion"].any() and not (labels["aus"] >= 0).any():
        # Scored anyway, the run would log an AU F1 of 0 that reports take for the model's test score.
        aus = f" nor any of the model's AUs ({', '.join(prep.aus)})" if prep.aus else ""
        raise DataError(f"split {split!r} of {prepared.source} has no emotion label{aus}: nothing to score")
    images = predictor.faces_of(part)
    probs = predictor.probabilities(images)
    thresholds = np.asarray(prep.thresholds or [0.5] * len(prep.aus), float)
    label = "all" if split == "all" else split
    ev = evaluate_split(label, labels, probs, aus=list(prep.aus), thresholds=thresholds)
    table = prediction_table(part.reset_index(drop=True), labels, probs, list(prep.aus), thresholds)
    attach_analysis(ev, table, AnalysisSettings.from_config(cfg), intervals=True)
    metrics = dict(ev.metrics)
    train_part = manifest.loc[manifest["split"] == "train"]
    metrics["majority_emotion_accuracy"] = majority_accuracy(
        emotion_targets(encode_labels(train_part, [])["emotion"]), emotion_targets(labels["emotion"])
    )
    sequence_analysis = None
    if sequences:
        from ckrun.sequence_evaluation import evaluate_sequences

        sequence_analysis = evaluate_sequences(predictor, part, label)
        metrics.update(sequence_analysis.metrics)
    source_run = tracking.model_run_id(model_uri)
    leak = _seen_in_training(source_run, prepared.digest)
    if leak:
        warn(leak)
    with tracking.start_run(
        kind="evaluate",
        run_name=f"evaluate-{timestamp()}",
        experiment=experiment,
        tags={"ckrun.evaluated_run_id": source_run or "", "ckrun.model_uri": model_uri},
        description=f"Evaluation of {model_uri} on the {split} split of {prepared.name}.",
    ) as run:
        tracking.log_params(
            {
                "model_uri": model_uri,
                "split": split,
                "data_source": prepared.source,
                "data_digest": prepared.digest,
                "n_images": len(part),
                "au_list": ",".join(prep.aus),
                "sequences": sequences,
            }
        )
        tracking.log_dataset(
            part, source=prepared.source, digest=prepared.digest, name=prepared.name, context="evaluation"
        )
        tracking.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            log_evaluation_artifacts({label if label in ("val", "test") else "test": ev}, tmp)
            if sequence_analysis is not None:
                from ckrun.sequence_evaluation import log_sequence_analysis

                log_sequence_analysis(sequence_analysis, label, tmp)
    echo(
        f"evaluated {model_uri} on {len(part)} {split} images of {prepared.name}: "
        + "  ".join(
            f"{k} {metrics[k]:.3f}"
            for k in (names.split_metric(label, "emotion_f1"), names.split_metric(label, "au_f1"))
            if k in metrics
        )
    )
    return EvaluationResult(run.run_id, metrics)
