"""CK+ label vocabulary: emotion codes, the 3-class task and FACS action-unit names.

Everything that maps between CK+'s numeric codes, emotion names and the high-level classes
lives here, so importers, the synthetic generator, metrics and reports agree on one table.
"""

from __future__ import annotations

import re

# CK+ Emotion/*.txt codes (0 neutral is excluded from the 3-class task).
CK_EMOTION_CODES: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sadness",
    7: "surprise",
}

# The high-level task, in the order of the emotion head's outputs (emotion_num).
EMOTION_CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")

# CK+'s seven emotions in code order: what the auxiliary head of `fine_emotion_weight` tells
# apart. The negative class joins five of them, each with its own AUs (EMFACS).
FINE_EMOTIONS: tuple[str, ...] = tuple(name for code, name in sorted(CK_EMOTION_CODES.items()) if code)

# Label keys whose rows are one-hot (an all-zero row is unlabelled); AU entries use -1 instead.
ONE_HOT_LABELS: tuple[str, ...] = ("emotion", "fine_emotion")

CK_TO_CLASS: dict[str, str] = {
    "anger": "negative",
    "contempt": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "happy": "positive",
    "surprise": "surprise",
}

# The five emotions the `negative` class joins: a fine-emotion head is worth training only where
# the data names at least two of them.
NEGATIVE_EMOTIONS: tuple[str, ...] = tuple(name for name in FINE_EMOTIONS if CK_TO_CLASS[name] == "negative")

# Spellings accepted in CSV manifests and class folders, mapped to CK+ names.
_ALIASES: dict[str, str] = {
    "happiness": "happy",
    "joy": "happy",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
}

# FACS action-unit names (Ekman & Friesen), used in tables and figure labels.
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    11: "nasolabial deepener",
    12: "lip corner puller",
    13: "cheek puffer",
    14: "dimpler",
    15: "lip corner depressor",
    16: "lower lip depressor",
    17: "chin raiser",
    18: "lip puckerer",
    20: "lip stretcher",
    21: "neck tightener",
    22: "lip funneler",
    23: "lip tightener",
    24: "lip pressor",
    25: "lips part",
    26: "jaw drop",
    27: "mouth stretch",
    28: "lip suck",
    29: "jaw thrust",
    30: "jaw sideways",
    31: "jaw clencher",
    34: "cheek puff",
    38: "nostril dilator",
    39: "nostril compressor",
    43: "eyes closed",
    44: "squint",
    45: "blink",
    54: "head down",
    61: "eyes turn left",
    62: "eyes turn right",
    63: "eyes up",
    64: "eyes down",
}

_AU_COLUMN = re.compile(r"^AU(\d+)$")


def au_column(code: int) -> str:
    """Manifest column name of an AU code, e.g. 12 -> 'AU12'."""
    return f"AU{int(code)}"


def au_code(column: str) -> int:
    """AU code of a manifest column, e.g. 'AU12' -> 12; ValueError for other names."""
    match = _AU_COLUMN.match(column)
    if not match:
        raise ValueError(f"not an AU column: {column!r}")
    return int(match.group(1))


def is_au_column(column: str) -> bool:
    return bool(_AU_COLUMN.match(column))


def au_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """The AU columns among `columns`, sorted by AU number."""
    return sorted((c for c in columns if is_au_column(c)), key=au_code)


def au_label(column_or_code: str | int) -> str:
    """Human label for tables and plots, e.g. 'AU12 lip corner puller'."""
    code = column_or_code if isinstance(column_or_code, int) else au_code(column_or_code)
    name = AU_NAMES.get(code)
    return f"AU{code} {name}" if name else f"AU{code}"


def normalise_emotion(value: str) -> tuple[str | None, str]:
    """Map a CK+ emotion name, alias or high-level class to (ck_emotion, emotion class).

    Returns ``(None, class)`` when `value` already is a high-level class. Raises
    ValueError for anything else, so callers can name the offending file or row.
    """
    key = str(value).strip().lower()
    key = _ALIASES.get(key, key)
    if key in CK_TO_CLASS:
        return key, CK_TO_CLASS[key]
    if key in EMOTION_CLASSES:
        return None, key
    known = sorted({*CK_TO_CLASS, *EMOTION_CLASSES})
    raise ValueError(f"unknown emotion {value!r} (expected one of: {', '.join(known)})")


def emotion_from_code(code: float) -> tuple[str, str | None]:
    """Map a CK+ emotion code to (ck_emotion, class); class is None for neutral (0).

    Raises ValueError for codes outside 0..7 or non-integral values.
    """
    if float(code) != int(code) or int(code) not in CK_EMOTION_CODES:
        raise ValueError(f"unknown CK+ emotion code {code!r} (expected an integer 0-7)")
    name = CK_EMOTION_CODES[int(code)]
    return name, CK_TO_CLASS.get(name)
