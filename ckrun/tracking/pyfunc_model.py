"""The pyfunc `model` as code: the file MLflow logs with every ckrun model (models-from-code).

Loading the pyfunc model (`mlflow.pyfunc.load_model`, `mlflow models serve`) runs this file
instead of unpickling an object: it names the wrapper, which builds a `Predictor` from the
model's artifacts (the Keras file, loaded in Keras' safe mode, and the preprocessing JSON).
It is still code from the store, so `ckrun predict` and `ckrun evaluate` never run it: they
read the same artifacts directly (`ckrun.tracking.model_files`).

Nothing imports this module; `ckrun.tracking.models.log_model` passes its path to MLflow.
"""

from mlflow.models import set_model

from ckrun.tracking.models import CkrunPyfunc

set_model(CkrunPyfunc())
