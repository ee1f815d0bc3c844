"""`attributes` and `excludedAttributes` (RFC7644 §3.4.2.5, §3.9; RFC7643 §7 `returned`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scimsync.errors import invalid_path
from scimsync.protocol.schema import ResourceType, resolve, split_urn
from scimsync.protocol.values import Doc

MAX_PATHS = 200


@dataclass(frozen=True)
class Projection:
    """Which attributes a response carries: `include` (if given) or minus `exclude`."""

    include: frozenset[str] | None = None  # canonical lower-case paths
    exclude: frozenset[str] = frozenset()

    def wants(self, path: str) -> bool:
        """Whether a top-level attribute path (lower-case) may appear in the response."""
        if self.include is not None:
            return any(p == path or p.startswith(path + ".") or path.startswith(p + ".")
                       for p in self.include)
        return path not in self.exclude


def _canonical(rtype: ResourceType, raw: str) -> str:
    raw = raw.strip()
    schema, rest = split_urn(raw, rtype)
    if schema is not None and rest == "":
        return schema.id.lower()
    rp = resolve(rtype, raw)
    if rp is None:
        raise invalid_path(f"unknown attribute {raw!r}")
    base = rp.attr.name if rp.sub is None else f"{rp.attr.name}.{rp.sub.name}"
    if rp.extension and rp.schema is not None:
        return f"{rp.schema.id}:{base}".lower()
    return base.lower()


def parse_projection(
    rtype: ResourceType, attributes: str | list[str] | None, excluded: str | list[str] | None
) -> Projection:
    """Parse the two comma-separated parameters; attributes wins if both are given."""

    def split(v: str | list[str] | None) -> list[str]:
        if v is None:
            return []
        parts = v if isinstance(v, list) else v.split(",")
        out = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
        if len(out) > MAX_PATHS:
            raise invalid_path("too many attribute paths")
        return out

    inc = split(attributes)
    if inc:
        return Projection(include=frozenset(_canonical(rtype, p) for p in inc))
    exc = split(excluded)
    return Projection(exclude=frozenset(_canonical(rtype, p) for p in exc))


def project(rtype: ResourceType, full: Doc, proj: Projection) -> Doc:
    """Apply `returned` rules and the projection to a full resource document."""
    out: Doc = {}
    for key, value in full.items():
        if key in ("schemas", "id"):
            out[key] = value  # returned: always
            continue
        ext = rtype.extension(key) if ":" in key else None
        if ext is not None:
            part = _project_ext(rtype, ext.id, value, proj)
            if part:
                out[key] = part
            continue
        attr = rtype.schema.attr(key)
        returned = attr.returned if attr else "default"
        if returned == "never":
            continue
        lkey = key.lower()
        if proj.include is not None:
            if returned != "always" and not proj.wants(lkey):
                continue
            value = _subset(value, lkey, proj.include)
        elif returned == "request" or lkey in proj.exclude:
            continue
        else:
            value = _drop_subs(value, lkey, proj.exclude)
        out[key] = value
    return out


def _project_ext(rtype: ResourceType, urn: str, part: Any, proj: Projection) -> Any:
    lurn = urn.lower()
    if not isinstance(part, dict):
        return part
    if proj.include is not None:
        if lurn in proj.include:
            return part
        kept = {k: v for k, v in part.items() if proj.wants(f"{lurn}:{k.lower()}")}
        return {k: _subset(v, f"{lurn}:{k.lower()}", proj.include) for k, v in kept.items()}
    if lurn in proj.exclude:
        return None
    return {
        k: _drop_subs(v, f"{lurn}:{k.lower()}", proj.exclude)
        for k, v in part.items()
        if f"{lurn}:{k.lower()}" not in proj.exclude
    }


def _subset(value: Any, path: str, include: frozenset[str]) -> Any:
    """Keep only the requested sub-attributes when sub-paths were asked for."""
    if path in include:
        return value
    subs = {p[len(path) + 1 :] for p in include if p.startswith(path + ".")}
    if not subs:
        return value
    if isinstance(value, list):
        return [_pick(v, subs) for v in value]
    return _pick(value, subs)


def _drop_subs(value: Any, path: str, exclude: frozenset[str]) -> Any:
    subs = {p[len(path) + 1 :] for p in exclude if p.startswith(path + ".")}
    if not subs:
        return value
    if isinstance(value, list):
        return [_omit(v, subs) for v in value]
    return _omit(value, subs)


def _pick(v: Any, subs: set[str]) -> Any:
    return {k: x for k, x in v.items() if k.lower() in subs} if isinstance(v, dict) else v


def _omit(v: Any, subs: set[str]) -> Any:
    return {k: x for k, x in v.items() if k.lower() not in subs} if isinstance(v, dict) else v
