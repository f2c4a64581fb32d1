"""Synthetic CK+: the embedded default dataset, written in the official CK+ layout.

Real CK+ is licensed and cannot ship with ckrun, yet every command has to work on a fresh
machine. This package draws faces from a 68-point (iBUG) landmark model that FACS action units
deform, and writes them with CK+'s folders and text formats, so the one CK+ importer reads
real and synthetic data alike. The set copies what matters for experiments: peak-frame-only
labels, FACS on every sequence but emotion on most, CK+'s class skew, mixed image sizes and
modes, demographics for bias tables, and nuisance variation (identity, pose, lighting,
background, sensor noise) that keeps raw pixels from being linearly separable.

Faces are drawn *from* the landmarks (same transform, 1/16-pixel fixed point), so the
Landmarks files agree with the pixels. Each subject's random stream derives from
(seed, subject index) alone, so the bytes written do not depend on the number of workers.

Modules, in import order (each imports only modules listed above it):

- `params`: `SynthParams` (every knob of the generator), `SynthSummary`, the set's constants.
- `expressions`: emotion prototypes and AU sampling with CK+'s class skew and label noise.
- `identity`: demographics, face shape, palette and image format of each subject.
- `landmarks`: the neutral 68-point face and the AU displacement fields that move it.
- `drawing`: face parts from landmarks to anti-aliased pixels.
- `scene`: background, lighting and sensor noise.
- `sequences`: one subject's sequences, as images plus Landmarks, FACS and Emotion files.
- `writer`: the output folder, the worker processes and `generate_synthetic_ckplus`.

This module is the public API; names elsewhere in the package are internal to it.
"""

from ckrun.data.synth.expressions import Expression, sample_expression
from ckrun.data.synth.params import (
    DEFAULT_SUBJECTS,
    IMAGE_SIZES,
    MARKER_FILE,
    PARTIAL_MARKER_FILE,
    SYNTH_AUS,
    SYNTH_VERSION,
    SynthParams,
    SynthSummary,
)
from ckrun.data.synth.writer import generate_synthetic_ckplus, is_synthetic_set

__all__ = [
    "DEFAULT_SUBJECTS",
    "IMAGE_SIZES",
    "MARKER_FILE",
    "PARTIAL_MARKER_FILE",
    "SYNTH_AUS",
    "SYNTH_VERSION",
    "Expression",
    "SynthParams",
    "SynthSummary",
    "generate_synthetic_ckplus",
    "is_synthetic_set",
    "sample_expression",
]
