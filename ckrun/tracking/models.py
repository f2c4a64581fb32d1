"""Trained models in MLflow: logging a run's model and loading it back as a `Predictor`.

A ckrun model is logged twice: the pyfunc wrapper (`model`: image paths or bytes in, a
labelled DataFrame out, so `mlflow models serve` answers like `ckrun predict`) and the plain
Keras flavour (`keras_model`, the preprocessing in its metadata). An ensemble (several
Keras models averaged) and a model fused with a linear baseline (`ckrun.fusion`) are logged
as the pyfunc wrapper only, one Keras file per member and the baseline as arrays; the file
layout is `ckrun.predict.Predictor`'s. MLflow 3 specifics live here: `name=` for models
and logged-model entities (``models:/<model_id>``).

The wrapper is logged as code (MLflow's models-from-code, `ckrun.tracking.pyfunc_model`), so
loading it unpickles nothing; `load_predictor` (what ckrun itself uses) does not even run that
code: it reads the Keras files and the preprocessing JSON (`ckrun.tracking.model_files`).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from ckrun.tracking.store import configure, quiet_loggers

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

    from ckrun.fusion import Fusion
    from ckrun.predict import Predictor

MODEL_NAME = "model"  # pyfunc wrapper: preprocessing + Keras model, DataFrame out
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # the wrapper's code, logged with the model
KERAS_MODEL_NAME = "keras_model"  # plain mlflow.keras flavour, preprocessing in its metadata


def _requirements() -> list[str]:
    """Pinned to what is installed, so serving environments match training."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("tensorflow-cpu", "keras", "numpy", "pandas", "pillow", "opencv-python-headless", "mlflow"):
        with contextlib.suppress(PackageNotFoundError):
            reqs.append(f"{dist}=={version(dist)}")
    if not any(r.startswith("tensorflow") for r in reqs):
        with contextlib.suppress(PackageNotFoundError):
            reqs.insert(0, f"tensorflow=={version('tensorflow')}")
    return reqs


class CkrunPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """Serving wrapper: image paths or base64 bytes in, a labelled DataFrame out.

    Plain Keras pyfunc returns a dict of arrays and knows nothing of cropping or
    normalisation; this applies the model's own preprocessing first.
    """

    def load_context(self, context: Any) -> None:
        from ckrun.tracking.model_files import predictor_from_artifacts

        self.predictor = predictor_from_artifacts(context.artifacts)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.predictor.predict_frame(model_input)


def _signature(prep_json: str) -> ModelSignature:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    prep = json.loads(prep_json)
    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "emotion")]
    outputs += [ColSpec("double", f"p_{c}") for c in prep["classes"]]
    for au in prep["aus"]:
        outputs += [ColSpec("double", f"{au}_prob"), ColSpec("long", au)]
    columns: list[ColSpec | TensorSpec] = [ColSpec("string", "image"), ColSpec("string", "landmarks", required=False)]
    if prep.get("reference", "none") == "neutral":  # the person's neutral face, path or base64 like `image`
        columns.append(ColSpec("string", "neutral"))
    inputs = Schema(columns)
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def log_model(
    keras_models: Any,
    preprocessing_json: str,
    config_yaml: str,
    member_preprocessing: Sequence[str] | None = None,
    fusions: Sequence[Fusion | None] | None = None,
) -> str:
    """Log the pyfunc wrapper (`model`) and, for one unfused model, the Keras flavour (`keras_model`).

    `keras_models` is one Keras model or a list (an ensemble, averaged at prediction);
    `member_preprocessing` gives each member its own preprocessing JSON when the members
    were trained on different splits; `fusions` the linear baselines averaged in
    (`ckrun.fusion`), which the Keras flavour could not carry. Returns the runs:/ URI of the
    pyfunc model.
    """
    import ckrun
    from ckrun.data.pipeline import Preprocessing
    from ckrun.predict import Predictor

    active = mlflow.active_run()
    if active is None:
        raise RuntimeError("log_model needs an active run")
    run_id = active.info.run_id
    models = list(keras_models) if isinstance(keras_models, list | tuple) else [keras_models]
    prep = Preprocessing.from_json(preprocessing_json)
    members = [Preprocessing.from_json(m) for m in member_preprocessing] if member_preprocessing else None
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor(models, prep, member_preps=members, fusions=fusions)
        artifacts = predictor.write_artifacts(Path(tmp), config_yaml)
        quiet = ("mlflow.pyfunc", "mlflow.models.model", "mlflow.keras.save", "mlflow.utils.requirements_utils")
        with quiet_loggers(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(PYFUNC_CODE),  # models-from-code: nothing pickled
                artifacts=artifacts,
                code_paths=[str(Path(ckrun.__file__).parent)],
                signature=_signature(preprocessing_json),
                pip_requirements=_requirements(),
            )
            if len(models) == 1 and not predictor.fusions:
                mlflow.keras.log_model(
                    models[0],
                    name=KERAS_MODEL_NAME,
                    pip_requirements=_requirements(),
                    metadata={"ckrun_preprocessing": json.loads(preprocessing_json), "ckrun_config": config_yaml},
                )
    return f"runs:/{run_id}/{MODEL_NAME}"


def load_predictor(model_uri: str) -> Predictor:
    """A `ckrun.predict.Predictor` for a `runs:/`, `models:/` or local model URI; runs no stored code."""
    from ckrun.tracking.model_files import load_model_files

    return load_model_files(model_uri)


def model_run_id(model_uri: str) -> str | None:
    """The run that logged a model URI (for `models:/name@alias` too)."""
    configure()
    try:
        from mlflow.models import get_model_info

        return get_model_info(model_uri).run_id
    except Exception:
        return None


def run_model_uri(run_id: str, name: str = MODEL_NAME) -> str | None:
    """``models:/<model_id>`` of the model `name` that a run logged, or None when it logged none.

    MLflow 3 keeps models as logged-model entities; registering this URI (rather than
    ``runs:/<id>/<name>``) avoids the registry's fallback warning and records the source run.
    """
    configure()
    try:
        run = MlflowClient().get_run(run_id)
        found = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
        )
    except Exception:
        return None
    matches = [m for m in found if m.name == name]
    return f"models:/{matches[0].model_id}" if matches else None
