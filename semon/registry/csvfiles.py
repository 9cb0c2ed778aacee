"""Reading and writing the registry's CSV files: UTF-8 (or, as Chinese Excel saves them, GB18030) with a header
row, columns in any order on import; exports carry the BOM Excel needs (docs/registry-csv.md)."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

# Excel reads a CSV as UTF-8 only when it starts with this; without it, Chinese names come out garbled.
BOM = "\ufeff"
# Tried in this order: UTF-8 (a BOM is stripped), then GB18030, a superset of the GBK that Chinese Excel saves in.
ENCODINGS = ("utf-8-sig", "gb18030")
_SAVE_AS_UTF8 = "in Excel, save it as 'CSV UTF-8 (逗号分隔)'"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class RegistryError(Exception):
    """The file has problems; `problems` lists each as 'line N: column C: reason', and the message counts them and
    the rows they are in ('12 problems in 7 rows'; line 1 is the header)."""

    def __init__(self, found: list[tuple[int, str]]):
        self.problems = [text for _, text in found]
        rows = len({line for line, _ in found if line > 1})
        where = (["the header"] if any(line <= 1 for line, _ in found) else []) + ([_plural(rows, "row")] * bool(rows))
        super().__init__(f"{_plural(len(found), 'problem')} in {' and '.join(where)}")


class Problems:
    """The problems found in a file, each on its line, raised together as one RegistryError in line order."""

    def __init__(self) -> None:
        self._found: list[tuple[int, str]] = []

    def add(self, line: int, reason: str, column: str | None = None) -> None:
        """One problem of line `line` (of its cell in `column`, if given)."""
        self._found.append((line, f"line {line}: column {column}: {reason}" if column else f"line {line}: {reason}"))

    def __bool__(self) -> bool:
        return bool(self._found)

    def raise_if_any(self) -> None:
        """Raise every problem found, sorted by line (those of one line in the order found)."""
        if self._found:
            raise RegistryError(sorted(self._found, key=lambda found: found[0]))


@dataclass(frozen=True)
class CsvFile:
    """A file's rows as text cells by column, with the line each was read on, and the encoding it was read in."""

    encoding: str
    rows: list[tuple[int, dict[str, str]]]
    # Required columns the rows have no cells of (reported once, on line 1).
    missing: tuple[str, ...] = ()


def _decode(data: bytes, problems: Problems) -> tuple[str, str] | None:
    """The text of a file and its encoding, or None (with the problem) if it is in none of ENCODINGS."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        problems.add(1, f"the file is UTF-16 text (Excel's 'Unicode text'), not CSV; {_SAVE_AS_UTF8}")
        return None
    failure = None
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            failure = failure or exc
    assert failure is not None
    # Where UTF-8 failed: GB18030 takes nearly any bytes, so its failure says little. The position is counted
    # after a BOM.
    at = failure.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
    problems.add(data.count(b"\n", 0, at) + 1,
                 f"the file is neither UTF-8 nor GB18030 (GBK) text (byte {at + 1}); {_SAVE_AS_UTF8}")
    return None


def read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...], problems: Problems) -> CsvFile:
    """Read every non-blank row of a file as cells of the columns it has; a bad header, rows of the wrong shape and
    unreadable text go to `problems`, and the rows are still read for their other problems (an unknown or repeated
    column is left out of the cells)."""
    decoded = _decode(path.read_bytes(), problems)
    if decoded is None:
        return CsvFile("", [])
    text, encoding = decoded
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        problems.add(1, "the file is empty; expected a header row")
        return CsvFile(encoding, [])
    header = [h.strip() for h in header]
    missing = tuple(c for c in required if c not in header)
    unknown = [c for c in header if c not in columns]
    twice = sorted({c for c in header if header.count(c) > 1})
    for reason in ([f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
                   + [f"column {c!r} given twice" for c in twice]):
        problems.add(1, f"{reason} (expected: {','.join(columns)})")
    usable = [i for i, name in enumerate(header) if name in columns and name not in twice]
    rows = []
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.add(reader.line_num, f"unreadable CSV: {exc}")
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.add(line, f"expected {len(header)} columns, found {len(record)}")
            continue
        rows.append((line, {header[i]: record[i].strip() for i in usable}))
    return CsvFile(encoding, rows, tuple(c for c in required if c in missing or c in twice))


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
    """Write the BOM, a header of `columns`, then each row's values of them; returns the rows written."""
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
        count += 1
    return count
