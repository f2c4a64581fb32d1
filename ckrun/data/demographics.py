"""Who is in a dataset: subjects per sex, ethnicity and age band.

Demographics describe people, not images, so every table counts each subject once. The
report's per-group scores (`ckrun.report.groups`) use the same columns and age bands.
"""

from __future__ import annotations

import pandas as pd

DEMOGRAPHIC_COLUMNS: tuple[str, ...] = ("sex", "ethnicity", "age")
# (label, lowest age, highest age) inclusive; CK+ participants are 18-50.
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-50", 35, 50),
)


def _per_subject(manifest: pd.DataFrame, column: str) -> pd.Series:
    """One value per subject: demographics describe people, not images."""
    if "subject" not in manifest.columns:
        return manifest[column]
    return manifest.groupby("subject", sort=True)[column].agg(
        lambda s: s.dropna().iloc[0] if s.notna().any() else pd.NA
    )


_SEX_NAMES = {"f": "female", "female": "female", "m": "male", "male": "male"}


def _normalise_sex(value: object) -> object:
    if pd.isna(value):
        return value
    return _SEX_NAMES.get(str(value).strip().lower(), str(value).strip())


def age_band(age: float) -> str:
    """CK+-style age band of an age in years; anything outside 18-50 is 'other'."""
    for label, low, high in AGE_BANDS:
        if low <= age < high + 1:
            return label
    return "other"


def demographic_tables(manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Subjects per sex / ethnicity / age band, with the % of all subjects.

    Only columns with at least one value get a table; missing values form an 'unknown' row.
    """
    tables: dict[str, pd.DataFrame] = {}
    for column in DEMOGRAPHIC_COLUMNS:
        if column not in manifest.columns or manifest[column].isna().all():
            continue
        values = _per_subject(manifest, column)
        if column == "age":
            ages = pd.to_numeric(values, errors="coerce")
            values = ages.map(lambda a: pd.NA if pd.isna(a) else age_band(float(a)))
            order = [b[0] for b in AGE_BANDS] + ["other"]
        else:
            if column == "sex":
                values = values.map(_normalise_sex)
            values = values.map(lambda v: v if pd.isna(v) else str(v))
            order = list(values.dropna().value_counts().index)
        tables[column] = _share_table(values, order)
    return tables


def _share_table(values: pd.Series, order: list[str]) -> pd.DataFrame:
    counts = values.dropna().value_counts()
    rows = {k: int(counts.get(k, 0)) for k in order if counts.get(k, 0) > 0}
    unknown = int(values.isna().sum())
    if unknown:
        rows["unknown"] = unknown
    table = pd.DataFrame({"subjects": pd.Series(rows, dtype=int)})
    table["percent"] = 100.0 * table["subjects"] / len(values)
    table.index.name = "group"
    return table


def age_range(manifest: pd.DataFrame) -> tuple[float, float, float] | None:
    """(youngest, median, oldest) subject age, or None without ages."""
    if "age" not in manifest.columns:
        return None
    ages = pd.to_numeric(_per_subject(manifest, "age"), errors="coerce").dropna()
    if ages.empty:
        return None
    return float(ages.min()), float(ages.median()), float(ages.max())
