"""The CSV downloads of the web app (the planning lists, old elevators, the equipment list): one writer, so that
every file opens the same way in Excel and none runs a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from flask import Response

from web.formatting import local_iso

# Registry text typed by many hands; a cell starting with one of these runs as a formula when the file is opened
# in a spreadsheet (CSV injection), so such text cells get a leading apostrophe. Codes and dates are left as are.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FREE_TEXT = frozenset({"district", "address", "use_unit", "firm"})


def cell(column: str, value: Any, free_text: Collection[str] = FREE_TEXT) -> Any:
    """A value as its CSV cell: blank for none, true/false (as JSON and the registry CSV write them), times in the
    users' zone with their offset, dates as YYYY-MM-DD, free text that would start a formula quoted with an
    apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):  # datetime is a date too
        return local_iso(value)
    if column in free_text and isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]],
           free_text: Collection[str] = FREE_TEXT) -> str:
    """Rows as CSV with a header, with a BOM so that Excel reads the Chinese names as UTF-8."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(c, row[c], free_text) for c in columns])
    return out.getvalue()


def response(columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]], filename: str,
             free_text: Collection[str] = FREE_TEXT) -> Response:
    """A CSV download named `filename`."""
    return Response(to_csv(columns, rows, free_text), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
