"""CSV-indexed layouts: a table of ids and labels, and one image file per id.

The Bologna lens-finding challenge (``classifications.csv`` + ``files/imageEUC_VIS-<ID>.fits``)
and Kaggle's CIFAR-10 (``trainLabels.csv`` + ``train/<id>.png``) are both this shape: a
``file_pattern`` with an ``{id}`` field maps each row to its file. A list of patterns gives one
file per channel (the multi-band Bologna sets ship one file per band). A set that ships its splits
as tables (the 100-class generated-images contest: ``train.csv`` + ``train_images/``,
``val.csv`` + ``val_images/``) gives one table and pattern per split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainable.errors import DataError


@dataclass
class TableListing:
    """Rows of a label table with the files that hold their images."""

    csv_path: Path
    files: list[tuple[Path, ...]]  # one tuple per row: a file per channel group
    labels: list  # the label column, one value per row
    metadata: pd.DataFrame  # every column but the label, one row per image


def find_csv(root: Path, name: str | None) -> Path:
    """The label table: ``root/name``, or the only ``*.csv`` in ``root`` when no name is given."""
    if name:
        path = root / name
        if not path.is_file():
            raise DataError(f"data.csv: {path} does not exist")
        return path
    found = sorted(root.glob("*.csv"))
    if len(found) != 1:
        what = "no .csv file" if not found else f"{len(found)} .csv files ({', '.join(p.name for p in found)})"
        raise DataError(f"{root}: has {what}; name the label table with data.csv")
    return found[0]


def read_table(csv_path: Path, id_column: str, label_column: str) -> pd.DataFrame:
    """Read the label table, checking that the id and label columns exist and are complete."""
    try:
        header = pd.read_csv(csv_path, nrows=0, skipinitialspace=True)
        columns = [c.strip() for c in header.columns]
        dtypes = {c: str for c in header.columns if c.strip() == id_column}
        table = pd.read_csv(csv_path, dtype=dtypes, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise DataError(f"{csv_path}: cannot read as CSV: {str(err).splitlines()[0]}") from None
    table.columns = columns
    for key, column in (("id_column", id_column), ("label_column", label_column)):
        if column not in table.columns:
            raise DataError(f"data.{key}: {column!r} is not a column of {csv_path}; "
                            f"columns: {', '.join(table.columns)}")
    for column in (id_column, label_column):
        missing = table[column].isna()
        if missing.any():
            row = int(missing.idxmax()) + 2  # header is line 1
            raise DataError(f"{csv_path}: {int(missing.sum())} rows have no {column!r} "
                            f"(e.g. line {row})")
    table[id_column] = table[id_column].astype(str).str.strip()
    duplicated = table[id_column].duplicated()
    if duplicated.any():
        raise DataError(f"{csv_path}: {int(duplicated.sum())} duplicated ids in column "
                        f"{id_column!r} (e.g. {table[id_column][duplicated].iloc[0]})")
    return table


def _pattern_files(root: Path, pattern: str) -> set[Path]:
    """Every file on disk that the pattern could name, whatever its id."""
    rel = Path(pattern.replace("{id}", "*"))
    return {p for p in root.glob(str(rel)) if p.is_file()}


def list_table(root: Path, csv_name: str | None, id_column: str, label_column: str,
               file_pattern: str | list[str]) -> TableListing:
    """Match every row of the label table to its file(s).

    Raises:
        DataError: a missing or unreadable table or column, rows without files, or files of the
            pattern without rows (both counted, one of each shown).
    """
    return list_split_tables(root, {"": csv_name}, id_column, label_column, {"": file_pattern})[""]


def list_split_tables(root: Path, tables: dict[str, str | None], id_column: str, label_column: str,
                      file_patterns: dict[str, str | list[str]]) -> dict[str, TableListing]:
    """One label table per shipped split (``{"train": "train.csv", "val": "val.csv"}``), each
    with its own file pattern; checked like :func:`list_table`, and no file named by two tables."""
    listings, problems, owner = {}, [], {}
    for split, name in tables.items():
        table, problem = _match(root, name, id_column, label_column, _as_list(file_patterns[split]))
        listings[split] = table
        problems += problem
        for f in (f for group in table.files for f in group):
            if owner.get(f, split) != split:
                raise DataError(f"{root}: {f.relative_to(root)} is named by both "
                                f"{listings[owner[f]].csv_path.name} and {table.csv_path.name}; "
                                "an image belongs to one split")
            owner[f] = split
    patterns = sorted({p for split in tables for p in _as_list(file_patterns[split])})
    orphans = sorted(set().union(*(_pattern_files(root, p) for p in patterns)) - set(owner))
    if orphans:
        names = " or ".join(t.csv_path.name for t in listings.values())
        problems.append(f"{len(orphans)} files have no row in {names} "
                        f"(e.g. {orphans[0].relative_to(root)})")
    if problems:
        raise DataError(f"{root}: " + "; ".join(problems))
    return listings


def _as_list(pattern: str | list[str]) -> list[str]:
    return [pattern] if isinstance(pattern, str) else list(pattern)


def _match(root: Path, csv_name: str | None, id_column: str, label_column: str,
           patterns: list[str]) -> tuple[TableListing, list[str]]:
    """The table's rows with their files, and the problem of rows whose file is missing."""
    csv_path = find_csv(root, csv_name)
    table = read_table(csv_path, id_column, label_column)
    ids = table[id_column].tolist()
    files = [tuple(root / p.format(id=i) for p in patterns) for i in ids]
    missing = [(i, f) for i, group in zip(ids, files) for f in group if not f.is_file()]
    problems = []
    if missing:
        i, f = missing[0]
        problems.append(f"{len(missing)} rows of {csv_path.name} have no file "
                        f"(e.g. {id_column} {i}: {f.relative_to(root)} is missing)")
    metadata = table.drop(columns=[label_column]).reset_index(drop=True)
    return TableListing(csv_path, files, table[label_column].tolist(), metadata), problems
