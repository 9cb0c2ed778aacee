"""Reading and writing the registry's CSV files: UTF-8 with a header row, columns in any order on import
(docs/registry-csv.md)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TextIO


class RegistryError(Exception):
    """The file has bad rows; `problems` lists each as 'line N: column C: reason'."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
             problems: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line, cells) for each non-blank row, with a cell for each column the file has; a bad header raises
    RegistryError, and rows of the wrong shape go to `problems`."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
        reader = csv.reader(handle)
        header = next(reader, None)
    except UnicodeDecodeError:
        raise RegistryError(["line 1: the file is not UTF-8 text"]) from None
    with handle:
        if header is None:
            raise RegistryError(["line 1: the file is empty; expected a header row"])
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in columns]
        twice = sorted({c for c in header if header.count(c) > 1})
        if missing or unknown or twice:
            reasons = ([f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
                       + [f"column {c!r} given twice" for c in twice])
            raise RegistryError([f"line 1: {r} (expected: {','.join(columns)})" for r in reasons])
        try:
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(header):
                    problems.append(f"line {line}: expected {len(header)} columns, found {len(record)}")
                    continue
                yield line, {h: v.strip() for h, v in zip(header, record, strict=True)}
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(f"line {reader.line_num}: unreadable CSV: {exc}")


def _cell(value: Any) -> str:
    """A value as the text of its CSV cell, which parses back to the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    # str(float) round-trips exactly, so an export re-imports as unchanged.
    return str(value)


def write_csv(out: TextIO, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> int:
    """Write a header of `columns`, then each row's values of them; returns the rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
        count += 1
    return count
