"""List and search parameters (RFC7644 §3.4.2, §3.4.3) and cursors (RFC9865)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from scimsync.errors import BadRequest, ScimError, invalid_syntax, invalid_value
from scimsync.limits import INT64_MAX, fits_int64, int64
from scimsync.protocol.discovery import DEFAULT_PAGE, MAX_RESULTS
from scimsync.protocol.filter import Filter, parse_filter
from scimsync.protocol.schema import SEARCH_REQUEST

PARAMS = ("filter", "sortBy", "sortOrder", "startIndex", "count", "cursor", "attributes",
          "excludedAttributes")


@dataclass(frozen=True)
class Cursor:
    """An opaque position: after an id (keyset, default order) or an offset (sorted)."""

    after_id: str | None = None
    offset: int = 0

    def encode(self) -> str:
        raw = {"a": self.after_id} if self.after_id is not None else {"o": self.offset}
        return base64.urlsafe_b64encode(orjson.dumps(raw)).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> Cursor:
        """Parse a cursor; 400 invalidCursor if it is not one of ours (RFC9865 §2.2)."""
        if text == "":
            return Cursor()
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if isinstance(raw, dict) and isinstance(raw.get("a"), str):
                return Cursor(after_id=raw["a"])
            if isinstance(raw, dict) and isinstance(raw.get("o"), int) and \
                    0 <= raw["o"] <= INT64_MAX:
                return Cursor(offset=raw["o"])
        except (ValueError, TypeError):
            pass
        raise BadRequest("the cursor is not valid", scim_type="invalidCursor")


@dataclass(frozen=True)
class Query:
    filter: Filter | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1
    count: int = DEFAULT_PAGE
    cursor: Cursor | None = None
    attributes: Any = None
    excluded: Any = None


def _int(value: Any, name: str) -> int:
    """An integer parameter; 400 invalidValue unless it is one that fits in 64 bits."""
    if isinstance(value, bool):
        raise invalid_value(f"{name} must be an integer")
    if isinstance(value, int):
        if not fits_int64(value):
            raise invalid_value(f"{name} is out of range")
        return value
    if isinstance(value, str):
        parsed = int64(value)
        if parsed is not None:
            return parsed
        if value.strip().lstrip("-").isdigit():
            raise invalid_value(f"{name} is out of range")
    raise invalid_value(f"{name} must be an integer")


def _mentions_password(flt: Filter) -> bool:
    from scimsync.protocol.filter import And, Not, Or, ValuePath

    if isinstance(flt, And | Or):
        return _mentions_password(flt.left) or _mentions_password(flt.right)
    if isinstance(flt, Not):
        return _mentions_password(flt.expr)
    if isinstance(flt, ValuePath):
        return flt.path.attr.lower() == "password"
    return flt.path.attr.lower() == "password"


def parse_query(params: dict[str, Any], *, body: bool = False) -> Query:
    """Parameters from a query string or a SearchRequest body."""
    if body:
        schemas = params.get("schemas")
        if not isinstance(schemas, list) or SEARCH_REQUEST not in schemas:
            raise invalid_syntax(f"schemas must be [{SEARCH_REQUEST!r}]")
    raw_filter = params.get("filter")
    flt = None
    if raw_filter is not None:
        if not isinstance(raw_filter, str):
            raise BadRequest("filter must be a string", scim_type="invalidFilter")
        flt = parse_filter(raw_filter)
        if _mentions_password(flt):
            if not body:
                # RFC7644 §3.12 `sensitive`: secrets must not travel in a request URI.
                raise ScimError("a filter on password must not be sent in a URL",
                                status=403, scim_type="sensitive")
            raise BadRequest("password cannot be filtered on", scim_type="invalidFilter")
    sort_by = params.get("sortBy")
    if sort_by is not None and not isinstance(sort_by, str):
        raise invalid_value("sortBy must be a string")
    order = params.get("sortOrder", "ascending")
    if not isinstance(order, str) or order.lower() not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be ascending or descending")
    start = max(1, _int(params.get("startIndex", 1), "startIndex"))
    count = min(max(0, _int(params.get("count", DEFAULT_PAGE), "count")), MAX_RESULTS)
    cursor = None
    if "cursor" in params and params["cursor"] is not None:
        if "startIndex" in params:
            raise invalid_value("use either cursor or startIndex, not both")
        if not isinstance(params["cursor"], str):
            raise BadRequest("the cursor is not valid", scim_type="invalidCursor")
        cursor = Cursor.decode(params["cursor"])
    return Query(flt, sort_by or None, order.lower() == "descending", start, count, cursor,
                 _paths(params, "attributes"), _paths(params, "excludedAttributes"))


def _paths(params: dict[str, Any], name: str) -> str | list[str] | None:
    """`attributes` or `excludedAttributes`: a comma-separated string, or in a
    SearchRequest an array of strings (RFC7644 §3.4.3); 400 invalidValue otherwise."""
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise invalid_value(f"{name} must be a string or an array of strings")
