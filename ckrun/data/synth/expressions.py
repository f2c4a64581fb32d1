"""What a sequence expresses: CK+'s emotion skew, EMFACS-style AU prototypes, label noise.

An `Expression` is labels only (emotion, AU levels, what the FACS file says); the landmark
model turns its AU levels into motion. `pick` is the weighted draw every sampler of the
package uses: it consumes exactly one uniform number, and the bytes written depend on that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ckrun.data.synth.params import SynthParams

# Sequences per CK+ emotion code in CK+ itself, i.e. 54% negative, 25% surprise, 21% positive.
_EMOTION_WEIGHTS: dict[int, int] = {1: 45, 2: 18, 3: 59, 4: 25, 5: 69, 6: 28, 7: 83}
_LEVEL_WEIGHTS = (0.08, 0.17, 0.3, 0.28, 0.17)  # FACS intensity A..E


@dataclass(frozen=True)
class _Prototype:
    """EMFACS-style AU set: `core` always, `optional` (au, p), one AU of each `one_of` group."""

    core: tuple[int, ...]
    optional: tuple[tuple[int, float], ...] = ()
    one_of: tuple[tuple[int, ...], ...] = ()
    keep: tuple[int, ...] = ()  # AUs label noise never drops (they carry the emotion)
    max_level: Mapping[int, int] = field(default_factory=dict)


_PROTOTYPES: dict[int, _Prototype] = {
    # Anger: lips tightened and/or pressed; CK+ codes AU23 and AU24 together more often than not.
    1: _Prototype(core=(4, 7), optional=((5, 0.4), (17, 0.5), (23, 0.6), (24, 0.6)), one_of=((23, 24),), keep=(4,)),
    2: _Prototype(core=(14,), optional=((12, 0.3),), keep=(14,), max_level={12: 2}),
    3: _Prototype(core=(9,), optional=((7, 0.3), (15, 0.4), (17, 0.5), (25, 0.3)), keep=(9,)),
    4: _Prototype(core=(1, 2, 4, 5, 20), optional=((25, 0.6), (26, 0.3)), keep=(4, 20)),
    5: _Prototype(core=(6, 12), optional=((25, 0.5),), keep=(12,)),
    6: _Prototype(core=(1, 4, 15), optional=((17, 0.5),), keep=(15,)),
    7: _Prototype(core=(1, 2, 5, 25), one_of=((26, 26, 27),), keep=(1, 2, 26, 27)),
}
# Pairs that would cancel each other when drawn (and rarely co-occur in FACS codes).
_CONFLICTS = frozenset(frozenset(p) for p in ((12, 15), (20, 23), (24, 25), (24, 26), (24, 27), (26, 27)))
# Extra AUs never include the ones that define another high-level class (12, 26, 27). The
# weights favour AUs that only one rare prototype carries, so every AU the model gets an
# output for has enough positives in a 40-subject set to be learned and scored.
_EXTRA_POOL = (1, 2, 4, 5, 6, 7, 9, 14, 15, 17, 20, 23, 24, 25)
_EXTRA_WEIGHTS = (1, 1, 1, 1, 1, 2, 2, 4, 2, 2, 4, 3, 3, 1)


@dataclass(frozen=True)
class Expression:
    """One sequence's target expression: the emotion, whether it is labelled, and AU levels."""

    emotion: int  # CK+ code 1..7
    has_emotion: bool
    levels: tuple[tuple[int, int], ...]  # (AU, FACS intensity 1..5), sorted by AU
    coded: tuple[tuple[int, float], ...]  # as written to the FACS file (0 = not intensity-coded)
    side: int  # -1 or +1: the side of unilateral AUs (14)


def pick(rng: np.random.Generator, weights: tuple[float, ...]) -> int:
    """Index drawn with probability proportional to `weights` (one uniform draw, unlike rng.choice's setup)."""
    target = rng.random() * sum(weights)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if target < total:
            return index
    return len(weights) - 1


def _conflicts(au: int, present: set[int]) -> bool:
    return any(frozenset((au, other)) in _CONFLICTS for other in present)


def _prototype_aus(proto: _Prototype, rng: np.random.Generator) -> set[int]:
    aus = set(proto.core)
    for group in proto.one_of:
        aus.add(int(group[rng.integers(len(group))]))
    for au, prob in proto.optional:
        if rng.random() < prob and not _conflicts(au, aus):
            aus.add(au)
    if aus & {26, 27}:
        aus.add(25)  # a dropped jaw parts the lips; CK+ codes both
    return aus


def _add_label_noise(aus: set[int], proto: _Prototype, rng: np.random.Generator, params: SynthParams) -> set[int]:
    """Drop and add AUs so that the AU set does not determine the emotion exactly."""
    droppable = sorted(aus - set(proto.keep) - set(proto.core[:1]) - {25})
    if droppable and rng.random() < params.missing_au_prob:
        aus = aus - {droppable[rng.integers(len(droppable))]}
    candidates = [(au, w) for au, w in zip(_EXTRA_POOL, _EXTRA_WEIGHTS, strict=True)
                  if au not in aus and not _conflicts(au, aus)]  # fmt: skip
    if candidates and rng.random() < params.extra_au_prob:
        aus = aus | {candidates[pick(rng, tuple(w for _, w in candidates))][0]}
    return aus


def sample_expression(rng: np.random.Generator, params: SynthParams | None = None) -> Expression:
    """Draw one sequence's emotion and AUs with CK+'s class skew and imperfect prototypes."""
    params = params or SynthParams()
    emotion = list(_EMOTION_WEIGHTS)[pick(rng, tuple(_EMOTION_WEIGHTS.values()))]
    proto = _PROTOTYPES[emotion]
    aus = _add_label_noise(_prototype_aus(proto, rng), proto, rng, params)
    levels = []
    coded = []
    for au in sorted(aus):
        level = pick(rng, _LEVEL_WEIGHTS) + 1
        level = min(level, proto.max_level.get(au, 5))
        levels.append((au, level))
        coded.append((au, 0.0 if rng.random() < params.uncoded_intensity_prob else float(level)))
    has_emotion = bool(rng.random() < params.emotion_fraction)
    side = 1 if rng.random() < 0.5 else -1
    return Expression(emotion, has_emotion, tuple(levels), tuple(coded), side)
