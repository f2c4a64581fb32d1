"""Reading the CSV tables users hand us: manifest CSVs and CK+'s optional subjects.csv.

Both go through `read_table` and `pick_demographics`, so they accept the same header
spellings (gender/race, any letter case), reject a non-numeric age the same way and point
at a bad cell with the same "row N (line M)" a user can find in an editor.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ckrun.data.manifest import STRING
from ckrun.errors import DataError

__all__ = ["find_column", "numeric_column", "pick_demographics", "read_demographics", "read_table", "row"]

# Accepted header spellings of the demographic columns (first match wins).
_DEMOGRAPHIC_ALIASES: dict[str, tuple[str, ...]] = {
    "age": ("age",),
    "sex": ("sex", "gender"),
    "ethnicity": ("ethnicity", "race"),
}


def read_table(csv_path: Path) -> pd.DataFrame:
    """The CSV as stripped strings (<NA> for empty cells), or a DataError saying why not."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: manifest CSV not found")
    try:
        table = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv_path}: the CSV file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise DataError(f"{csv_path}: not a readable CSV file ({detail})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise DataError(f"{csv_path}: the CSV has a header but no rows")
    # "string" dtype makes .str safe on all-empty columns under pandas 2 and 3 alike.
    return table.apply(lambda column: column.astype(STRING).str.strip())


def read_demographics(csv_path: Path) -> pd.DataFrame:
    """A subject -> (age, sex, ethnicity) table, such as CK+'s optional subjects.csv."""
    table = read_table(csv_path)
    subject = find_column(table.columns, "subject")
    if subject is None:
        raise DataError(f"{csv_path}: missing column subject; found: {', '.join(table.columns)}")
    if table[subject].isna().any():
        i = int(np.flatnonzero(table[subject].isna().to_numpy())[0])
        raise DataError(f"{csv_path}: {row(i)}: empty subject")
    duplicated = table[subject].duplicated()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(f"{csv_path}: {row(i)}: subject {table[subject].iloc[i]!r} repeated")
    found = pick_demographics(table, csv_path)
    demographics = pd.DataFrame(found, index=table.index)
    return demographics.set_axis(pd.Index(table[subject], name="subject"))


def pick_demographics(table: pd.DataFrame, source: Path) -> dict[str, pd.Series]:
    """The demographic columns of `table` under their manifest names (age, sex, ethnicity).

    Shared by the CSV reader and CK+'s subjects.csv, so both accept gender/race spellings
    and reject a non-numeric age the same way.
    """
    found: dict[str, pd.Series] = {}
    for name, aliases in _DEMOGRAPHIC_ALIASES.items():
        column = find_column(table.columns, *aliases)
        if column is None:
            continue
        values = table[column]
        if name == "age":
            values = numeric_column(values, column, source)
        found[name] = values
    return found


def find_column(columns: Iterable[str], *names: str) -> str | None:
    """The first of `names` among `columns`: exact spelling first, then any letter case."""
    columns = list(columns)
    for name in names:
        if name in columns:
            return name
    lowered = {str(c).lower(): c for c in columns}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def row(index: int) -> str:
    """A CSV row as a user finds it: data row number and the editor's line number."""
    return f"row {index + 1} (line {index + 2})"


def numeric_column(values: pd.Series, column: str, source: Path) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = values.notna() & numeric.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: {row(i)}: {column} {values.iloc[i]!r} is not a number")
    return numeric
