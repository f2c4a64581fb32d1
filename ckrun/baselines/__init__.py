"""Linear floors under every deep result: the feature sets, the model families, the verdict.

A ResNet result means little until it is set beside what a tuned linear model gets from the
same faces; on the maintainers' real CK+ split a linear SVM on raw 48 px pixels, C chosen on
validation, reached 0.933 test emotion accuracy. The package keeps those floors honest:

- `features`: raw pixels, HOG descriptors and LBP histograms of the baseline's 48 px grey faces;
- `families`: ``logreg``, ``svm``, ``hog-svm``, ``lbp-svm`` (standardised features, one classifier per AU,
  probabilities calibrated on the training split only) and the regularisation grid;
- `selection`: C chosen on validation per head, and ``best`` across families;
- `verdict`: whether a deep run beats a baseline on every head (pure, for reports and jobs).

This module imports nothing heavy, so the report and the CLI can name families cheaply.
"""

from __future__ import annotations

FAMILY_LABELS: dict[str, str] = {
    "logreg": "logistic-regression",
    "svm": "linear-SVM",
    "hog-svm": "HOG-SVM",
    "lbp-svm": "LBP-SVM",
}
MODEL_CHOICES = (*FAMILY_LABELS, "best")
DEFAULT_MODEL = "best"
# Log-spaced from strong to weak regularisation, tried for each head. On standardised features
# and a few hundred faces the hinge-loss SVM reaches its hard-margin solution by C ~ 0.1, so the
# top of the grid costs little and changes nothing there; the bottom is where heads differ.
C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def objective_metric(family: str) -> str:
    """The metric a `best` baseline run logs each family's val objective under ('baseline_objective_hog_svm')."""
    return f"baseline_objective_{family.replace('-', '_')}"


def family_label(name: object) -> str:
    """A family's name in prose ('HOG-SVM'); runs logged before families existed are 'pixel'."""
    return FAMILY_LABELS.get(name, "pixel") if isinstance(name, str) else "pixel"
