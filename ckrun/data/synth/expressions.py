"""What a sequence expresses: CK+'s emotion skew, EMFACS-style AU prototypes, label noise.

An `Expression` is labels only: what is drawn (emotion, AU levels) and what the label files
say (`label`, `coded`), which differ a little, as FACS coders disagree. The landmark model
turns its AU levels into motion. `pick` is the weighted draw every sampler of the
package uses: it consumes exactly one uniform number, and the bytes written depend on that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ckrun.data.synth.params import SynthParams

# Sequences per CK+ emotion code in CK+ itself, i.e. 54% negative, 25% surprise, 21% positive.
_EMOTION_WEIGHTS: dict[int, int] = {1: 45, 2: 18, 3: 59, 4: 25, 5: 69, 6: 28, 7: 83}


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
# AUs that coders confuse with each other (similar appearance), so a miscoded AU is written
# as its look-alike when it has one; otherwise it is left out.
_LOOK_ALIKES: dict[int, tuple[int, ...]] = {
    1: (2,), 2: (1,), 4: (9,), 6: (7,), 7: (6,), 9: (4,), 12: (14,), 14: (12,), 15: (17,),
    17: (15,), 23: (24,), 24: (23,), 25: (26,), 26: (25, 27), 27: (26,),
}  # fmt: skip


@dataclass(frozen=True)
class Expression:
    """One sequence's target expression: the emotion, whether it is labelled, and AU levels."""

    emotion: int  # CK+ code 1..7, as drawn
    has_emotion: bool
    levels: tuple[tuple[int, int], ...]  # (AU, FACS intensity 1..5) as drawn, sorted by AU
    coded: tuple[tuple[int, float], ...]  # as written to the FACS file (0 = not intensity-coded)
    side: int  # -1 or +1: the side of unilateral AUs (14)
    label: int  # CK+ code as written to the Emotion file (label noise may make it differ)


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


def _vary_prototype(aus: set[int], proto: _Prototype, rng: np.random.Generator, params: SynthParams) -> set[int]:
    """Drop and add AUs so that the AU set does not determine the emotion exactly."""
    droppable = sorted(aus - set(proto.keep) - set(proto.core[:1]) - {25})
    if droppable and rng.random() < params.missing_au_prob:
        aus = aus - {droppable[rng.integers(len(droppable))]}
    candidates = [(au, w) for au, w in zip(_EXTRA_POOL, _EXTRA_WEIGHTS, strict=True)
                  if au not in aus and not _conflicts(au, aus)]  # fmt: skip
    if candidates and rng.random() < params.extra_au_prob:
        aus = aus | {candidates[pick(rng, tuple(w for _, w in candidates))][0]}
    return aus


def _miscode(coded: list[tuple[int, float]], rng: np.random.Generator, rate: float) -> list[tuple[int, float]]:
    """Each code is wrong with probability `rate`: written as a look-alike AU, or left out."""
    if rate <= 0:
        return coded
    drawn = {au for au, _ in coded}
    out: dict[int, float] = {}
    for au, value in coded:
        if rng.random() >= rate:
            out.setdefault(au, value)
            continue
        options = [a for a in _LOOK_ALIKES.get(au, ()) if a not in drawn and a not in out]
        if options:
            out[options[int(rng.integers(len(options)))]] = value
    if not out:  # a coder always codes something on a peak frame
        out = {coded[0][0]: coded[0][1]}
    return sorted(out.items())


def _mislabel(emotion: int, rng: np.random.Generator, rate: float) -> int:
    """The emotion as written: another one, with CK+'s base rates, with probability `rate`."""
    if rate <= 0 or rng.random() >= rate:
        return emotion
    others = [e for e in _EMOTION_WEIGHTS if e != emotion]
    return others[pick(rng, tuple(_EMOTION_WEIGHTS[e] for e in others))]


def sample_expression(rng: np.random.Generator, params: SynthParams | None = None) -> Expression:
    """Draw one sequence's emotion and AUs with CK+'s class skew and imperfect prototypes."""
    params = params or SynthParams()
    emotion = list(_EMOTION_WEIGHTS)[pick(rng, tuple(_EMOTION_WEIGHTS.values()))]
    proto = _PROTOTYPES[emotion]
    aus = _vary_prototype(_prototype_aus(proto, rng), proto, rng, params)
    levels = []
    coded = []
    for au in sorted(aus):
        level = pick(rng, params.intensity_weights) + 1
        level = min(level, proto.max_level.get(au, 5))
        levels.append((au, level))
        coded.append((au, 0.0 if rng.random() < params.uncoded_intensity_prob else float(level)))
    has_emotion = bool(rng.random() < params.emotion_fraction)
    side = 1 if rng.random() < 0.5 else -1
    coded = _miscode(coded, rng, params.au_label_noise)
    label = _mislabel(emotion, rng, params.emotion_label_noise)
    return Expression(emotion, has_emotion, tuple(levels), tuple(coded), side, label)
