"""ckrun: MLflow-tracked CK+ facial-expression experiments (emotion + FACS action units)."""

import os as _os

# TensorFlow reads this when it is first imported, so the package sets it before any module
# imports TensorFlow: with oneDNN's custom CPU ops on, TF 2.21 segfaults training the separable
# convolutions of backbone=fer_xception. Off, library calls (the benchmarks') train exactly as
# the CLI always has. An explicit setting in the environment still wins.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
