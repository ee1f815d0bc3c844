"""Tabular reports as CSV, shared by the CLI (`--csv`) and the admin API (`format=csv`).

A cell that holds a list or an object is written as compact JSON, so a report keeps
everything its JSON form has and still opens in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def csv_text(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """The rows as CSV with a header line, in `columns` order (other keys left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return out.getvalue()
