"""Loading a logged ckrun model from its files, running nothing the store holds.

`mlflow.pyfunc.load_model` runs code that comes with a model: the pickled wrapper of older
runs, the wrapper's code file of models-from-code, ``code_paths`` on ``sys.path``. A store
someone else can write to must not run code on the machine that predicts, so `ckrun
predict`, `ckrun evaluate` and the report take another way: download the model's folder,
read its ``MLmodel`` as YAML, and build the `Predictor` from the Keras file (Keras' safe
mode, ckrun's layers and losses from the installed package, never from the store) and the
preprocessing JSON. Both flavours work: ``…/model`` (pyfunc artifacts) and ``…/keras_model``
(the preprocessing in its metadata).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import yaml

from ckrun.errors import CkrunError
from ckrun.tracking.store import configure, local_path, quiet_loggers

if TYPE_CHECKING:
    from ckrun.predict import Predictor


def predictor_from_artifacts(artifacts: Mapping[str, str | Path]) -> Predictor:
    """The `Predictor` of a pyfunc model's artifacts (local paths by name), as logged by `log_model`.

    The one recipe both loading paths share: MLflow's (`CkrunPyfunc.load_context`) and ckrun's
    own, which reads the same artifacts without running the model's code.
    """
    from ckrun.predict import Predictor

    return Predictor.from_artifacts({name: str(path) for name, path in artifacts.items()})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model_files(model_uri: str) -> Predictor:
    """Download `model_uri` (``runs:/``, ``models:/``, a folder) and build its `Predictor`."""
    configure()
    folder = local_path(model_uri)
    if folder is not None and not folder.exists():
        # MLflow's own message here is "failures occurred while downloading ... from :", the path on a later line.
        raise CkrunError(
            f"cannot load model {model_uri!r}: no such file or folder "
            "(expected runs:/<run_id>/model, models:/<name>@<alias> or a model folder)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with quiet_loggers(("mlflow.artifacts", "mlflow.store.artifact")), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        except Exception as exc:
            raise CkrunError(f"cannot load model {model_uri!r}: {_first_line(exc)}") from None
        mlmodel = local / "MLmodel"
        if not mlmodel.is_file():
            raise CkrunError(f"{model_uri!r} is not an MLflow model (no MLmodel file)")
        try:
            conf = yaml.safe_load(mlmodel.read_text()) or {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise CkrunError(f"{model_uri!r}: unreadable MLmodel file ({_first_line(exc)})") from None
        return _predictor(model_uri, local, conf)


def _predictor(model_uri: str, local: Path, conf: dict[str, Any]) -> Predictor:
    flavors = conf.get("flavors") or {}
    metadata = conf.get("metadata") or {}
    try:
        if "keras" in flavors and metadata.get("ckrun_preprocessing"):
            return _from_keras_flavour(local, flavors["keras"], metadata)
        artifacts = (flavors.get("python_function") or {}).get("artifacts") or {}
        if "preprocessing" in artifacts and any(name.startswith("keras_model") for name in artifacts):
            paths = {name: _inside(local, spec["path"]) for name, spec in artifacts.items() if spec.get("path")}
            return predictor_from_artifacts(paths)
    except CkrunError:
        raise
    except Exception as exc:  # a damaged or foreign file: say which model, in one line
        raise CkrunError(f"cannot load model {model_uri!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    raise CkrunError(f"{model_uri!r} is not a ckrun model (no ckrun preprocessing found)")


def _inside(root: Path, relative: str) -> Path:
    """`relative` below `root`, refusing paths that climb out of the model's folder."""
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise CkrunError(f"model file {relative!r} lies outside the model's folder")
    return path


def _from_keras_flavour(local: Path, flavour: dict[str, Any], metadata: dict[str, Any]) -> Predictor:
    if flavour.get("save_exported_model"):
        raise CkrunError("an exported Keras SavedModel cannot be loaded in safe mode; log the .keras file")
    keras_file = _inside(local, f"{flavour.get('data', 'data')}/model.keras")
    folder = Path(tempfile.mkdtemp(dir=local))
    prep = folder / "preprocessing.json"
    prep.write_text(json.dumps(metadata["ckrun_preprocessing"]))
    config = folder / "config.yaml"
    config.write_text(str(metadata.get("ckrun_config") or "{}"))
    return predictor_from_artifacts({"keras_model": keras_file, "preprocessing": prep, "config": config})
