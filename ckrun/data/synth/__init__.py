"""Synthetic CK+: the embedded default dataset, written in the official CK+ layout.

Real CK+ is licensed and cannot ship with ckrun, yet every command has to work on a fresh
machine. This package draws faces from a 68-point (iBUG) landmark model that FACS action units
deform, and writes them with CK+'s folders and text formats, so the one CK+ importer reads
real and synthetic data alike. The set copies what matters for experiments: peak-frame-only
labels, FACS on every sequence but emotion on most, CK+'s class skew, mixed image sizes and
modes, demographics for bias tables, and two difficulties (`SynthParams.preset`): `realistic`
(the default) is modelled on what real CK+ looks like, where people differ more than their
expressions, AUs are often slight, heads turn a little, light and focus change between
sessions and a few labels are wrong; `easy` is the cartoon of generator v3, for fast tests.

Faces are drawn *from* the landmarks through one view (pose, 1/16-pixel fixed point), so the
Landmarks files agree with the pixels. Each subject's random stream derives from
(seed, subject index) alone, so the bytes written do not depend on the number of workers.

Modules, in import order (each imports only modules listed above it):

- `params`: `SynthParams` (every knob of the generator), `SynthSummary`, the set's constants.
- `expressions`: emotion prototypes and AU sampling with CK+'s class skew and label noise.
- `pose`: the view from face units to pixels, turning a simple 3D head.
- `skin`: per-subject skin texture, warped under the face in every frame.
- `identity`: demographics, face shape, palette, glasses, facial hair and skin of each subject.
- `landmarks`: the neutral 68-point face and the AU displacement fields that move it.
- `canvas`: drawing primitives in face units through a view.
- `features`: glasses, stubble, beards and moustaches.
- `drawing`: face parts from landmarks to anti-aliased pixels.
- `scene`: background, lighting, focus blur and sensor noise.
- `sequences`: one subject's sequences, as images plus Landmarks, FACS and Emotion files.
- `writer`: the output folder, the worker processes and `generate_synthetic_ckplus`.

This module is the public API; names elsewhere in the package are internal to it.
"""

from ckrun.data.synth.expressions import Expression, sample_expression
from ckrun.data.synth.params import (
    DEFAULT_DIFFICULTY,
    DEFAULT_SUBJECTS,
    DIFFICULTIES,
    IMAGE_SIZES,
    MARKER_FILE,
    PARTIAL_MARKER_FILE,
    PRESETS,
    SYNTH_AUS,
    SYNTH_VERSION,
    SynthParams,
    SynthSummary,
)
from ckrun.data.synth.writer import generate_synthetic_ckplus, is_synthetic_set

__all__ = [
    "DEFAULT_DIFFICULTY",
    "DEFAULT_SUBJECTS",
    "DIFFICULTIES",
    "IMAGE_SIZES",
    "MARKER_FILE",
    "PARTIAL_MARKER_FILE",
    "PRESETS",
    "SYNTH_AUS",
    "SYNTH_VERSION",
    "Expression",
    "SynthParams",
    "SynthSummary",
    "generate_synthetic_ckplus",
    "is_synthetic_set",
    "sample_expression",
]
