"""ckrun: MLflow-tracked CK+ facial-expression experiments (emotion + FACS action units)."""

__version__ = "0.1.0"
