"""Trained models in MLflow: logging a run's model and loading it back as a `Predictor`.

A ckrun model is logged twice: the pyfunc wrapper (`model`: image paths or bytes in, a
labelled DataFrame out, so `mlflow models serve` answers like `ckrun predict`) and the plain
Keras flavour (`keras_model`, the preprocessing in its metadata). An ensemble (several
Keras models averaged) is logged as the pyfunc wrapper only, one Keras file per member; the
file layout is `ckrun.predict.Predictor`'s. MLflow 3 specifics live here: `name=` for models
and logged-model entities (``models:/<model_id>``).
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

from ckrun.errors import CkrunError
from ckrun.tracking.store import configure, quiet_loggers

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

    from ckrun.predict import Predictor

MODEL_NAME = "model"  # pyfunc wrapper: preprocessing + Keras model, DataFrame out
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
        from ckrun.predict import Predictor

        self.predictor = Predictor.from_artifacts(context.artifacts)

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
    inputs = Schema([ColSpec("string", "image"), ColSpec("string", "landmarks", required=False)])
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def log_model(
    keras_models: Any, preprocessing_json: str, config_yaml: str, member_preprocessing: Sequence[str] | None = None
) -> str:
    """Log the pyfunc wrapper (`model`) and, for one model, the Keras flavour (`keras_model`).

    `keras_models` is one Keras model or a list (an ensemble, averaged at prediction);
    `member_preprocessing` gives each member its own preprocessing JSON when the members
    were trained on different splits. Returns the runs:/ URI of the pyfunc model.
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
        artifacts = Predictor(models, prep, member_preps=members).write_artifacts(Path(tmp), config_yaml)
        quiet = ("mlflow.pyfunc", "mlflow.models.model", "mlflow.keras.save", "mlflow.utils.requirements_utils")
        with quiet_loggers(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=CkrunPyfunc(),
                artifacts=artifacts,
                code_paths=[str(Path(ckrun.__file__).parent)],
                signature=_signature(preprocessing_json),
                pip_requirements=_requirements(),
            )
            if len(models) == 1:
                mlflow.keras.log_model(
                    models[0],
                    name=KERAS_MODEL_NAME,
                    pip_requirements=_requirements(),
                    metadata={"ckrun_preprocessing": json.loads(preprocessing_json), "ckrun_config": config_yaml},
                )
    return f"runs:/{run_id}/{MODEL_NAME}"


def load_predictor(model_uri: str) -> Predictor:
    """A `ckrun.predict.Predictor` for a `runs:/`, `models:/` or local model URI."""
    from ckrun.predict import Predictor

    configure()
    try:
        with quiet_loggers(("mlflow.pyfunc", "mlflow.models.model")), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CkrunError(f"cannot load model {model_uri!r}: {first}") from None
    meta = loaded.metadata
    flavors = meta.flavors if meta else {}
    if "keras" in flavors and (meta.metadata or {}).get("ckrun_preprocessing"):
        import yaml

        from ckrun.data.pipeline import Preprocessing

        prep = Preprocessing.from_json(json.dumps(meta.metadata["ckrun_preprocessing"]))
        config = yaml.safe_load(meta.metadata.get("ckrun_config") or "{}")
        return Predictor(loaded.get_raw_model(), prep, config)
    try:
        wrapper = loaded.unwrap_python_model()
    except Exception:
        wrapper = None
    if not isinstance(wrapper, CkrunPyfunc):
        raise CkrunError(f"{model_uri!r} is not a ckrun model (no ckrun preprocessing found)")
    return wrapper.predictor


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
