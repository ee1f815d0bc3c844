"""Tabular reports as CSV, shared by the CLI (`--csv`) and the admin API (`format=csv`).

A cell that holds a list or an object is written as compact JSON, so a report keeps
everything its JSON form has and still opens in a spreadsheet.

Reports carry what identity providers and applications sent (user names, agent
names, credential labels), and auditors open them in spreadsheets, which run a cell
that starts with a formula character. Such a text cell is written with a leading
single quote, as the OWASP guidance on CSV injection recommends: the spreadsheet shows
the text and runs nothing. Numbers are left as they are. This module is the only
place that writes CSV; JSON answers carry the values unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson

# What makes a spreadsheet read a cell as a formula (OWASP, CSV Injection), and the
# full-width forms that some spreadsheets take for the same characters.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralised(text: str) -> str:
    """Text as a spreadsheet shows it without evaluating it (OWASP CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()  # starts with { or [: never a formula
    if isinstance(value, str):
        return neutralised(value)
    return value


def csv_text(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """The rows as CSV with a header line, in `columns` order (other keys left out)."""
    out = io.StringIO()
    # CRLF (RFC 4180 §2), which also makes the writer quote a cell holding a lone \r:
    # unquoted, a spreadsheet would start a new row there, and that row's first cell
    # could be a formula.
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return out.getvalue()
