"""Compile filter trees to parameterised SQLAlchemy expressions (RFC7644 §3.4.2.2).

Values always travel as bound parameters; attribute names come from the schema, never
from the request text. Semantics match scimsync.protocol.evaluate, which the tests use
as the oracle.

Building SQLAlchemy expressions costs far more than running the query (about 150 us
for a one-term filter against 40 us to execute it), so a compiled filter is kept per
*shape* (the tree with its values taken out): each bound parameter remembers which
leaf of the tree it reads and how to prepare that value (case folding, dateTime
normalisation, LIKE patterns). `bind` fills them in for a new filter of that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from scimsync import limits
from scimsync.errors import invalid_filter, invalid_value
from scimsync.protocol.evaluate import comparable, resolve_filter_path
from scimsync.protocol.filter import And, Compare, Filter, Not, Or, Present, ValuePath
from scimsync.protocol.resources import ACTIVE_TYPES, GROUPED_TYPES, NAME_ATTRIBUTE
from scimsync.protocol.schema import Attribute, ResolvedPath, ResourceType, resolve
from scimsync.store.filter_merge import merge_or
from scimsync.store.tables import memberships, resources

R = resources.c
M = memberships.c
Expr = ColumnElement[Any]
Prep = Callable[[Any], Any]


def leaves(flt: Filter) -> list[Compare | Present]:
    """Comparison and presence terms in a fixed order (pre-order, left to right)."""
    if isinstance(flt, And | Or):
        return leaves(flt.left) + leaves(flt.right)
    if isinstance(flt, Not):
        return leaves(flt.expr)
    if isinstance(flt, ValuePath):
        return leaves(flt.filter)
    return [flt]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    return type(value).__name__


def shape(flt: Filter) -> tuple[Any, ...]:
    """The structure of a filter without its values: equal shapes compile alike."""
    if isinstance(flt, And | Or):
        return (type(flt).__name__, shape(flt.left), shape(flt.right))
    if isinstance(flt, Not):
        return ("not", shape(flt.expr))
    if isinstance(flt, ValuePath):
        return ("vp", str(flt.path).lower(), shape(flt.filter))
    if isinstance(flt, Present):
        return ("pr", str(flt.path).lower())
    return ("cmp", str(flt.path).lower(), flt.op, _kind(flt.value))


def _like_escape(value: str) -> str:
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


class Compiler:
    """Compiles filters for one resource type on one SQL dialect."""

    def __init__(self, rtype: ResourceType, dialect: str, lenient: bool = False):
        self.rtype = rtype
        self.pg = dialect == "postgresql"
        # Root searches span types: an attribute a type lacks is simply absent there.
        self.lenient = lenient
        # (parameter name, index of the leaf it reads, how to prepare the value)
        self.params: list[tuple[str, int, Prep]] = []
        self._leaf_index: dict[int, int] = {}
        self.json_terms = 0  # terms that read the JSON document of each candidate row

    # --- public -------------------------------------------------------------

    def compile(self, flt: Filter) -> Expr:
        """The WHERE expression for a filter; values become named bound parameters.
        400 invalidFilter past the limit of terms that read JSON documents."""
        flt = merge_or(self.rtype, flt)
        self._leaf_index = {id(leaf): i for i, leaf in enumerate(leaves(flt))}
        self.json_terms = 0
        expr = self._compile(flt)
        most = limits.current().filter_json_terms
        if self.json_terms > most:
            raise invalid_filter(
                f"the filter has {self.json_terms} terms on attributes without an index; at "
                f"most {most} are allowed (OR'ed terms on one multi-valued attribute count "
                "once)")
        return expr

    def bind(self, flt: Filter) -> dict[str, Any]:
        """Parameter values for a filter of the shape this compiler compiled."""
        terms = leaves(merge_or(self.rtype, flt))
        return {name: prep(getattr(terms[i], "value", None)) for name, i, prep in self.params}

    def _param(self, node: Compare, prep: Prep) -> BindParameter[Any]:
        name = f"f{len(self.params)}"
        self.params.append((name, self._leaf_index[id(node)], prep))
        return bindparam(name, prep(node.value))

    def _compile(self, flt: Filter) -> Expr:
        if isinstance(flt, And):
            return and_(self._compile(flt.left), self._compile(flt.right))
        if isinstance(flt, Or):
            return or_(self._compile(flt.left), self._compile(flt.right))
        if isinstance(flt, Not):
            return not_(self._compile(flt.expr))
        if self.lenient and resolve(self.rtype, flt.path.full_attr, flt.path.sub) is None:
            return true() if isinstance(flt, Compare) and flt.op == "ne" else false()
        if isinstance(flt, ValuePath):
            return self._value_path(flt)
        rp = resolve_filter_path(self.rtype, flt.path)
        if rp.attr.multi_valued:
            return self._multi(rp, flt)
        return self._single(rp, flt)

    def sort_key(self, path: str) -> Expr:
        """The expression that `sortBy=path` orders by (RFC7644 §3.4.2.3)."""
        from scimsync.protocol.filter import parse_attr_path

        rp = resolve_filter_path(self.rtype, parse_attr_path(path, invalid_value))
        if rp.attr.multi_valued:
            if rp.attr.name == "emails" and not rp.extension:
                return R.email_ci
            raise invalid_value(f"cannot sort by multi-valued attribute {rp.dotted}")
        if rp.attr.type == "complex" and rp.sub is None:
            raise invalid_value(f"cannot sort by complex attribute {rp.dotted}")
        col = self._column(rp)
        if col is not None:
            return col
        return self._json_scalar(rp)

    # --- single-valued ------------------------------------------------------

    def _column(self, rp: ResolvedPath) -> Expr | None:
        """The indexed column holding this attribute, already lower-cased if not caseExact."""
        if rp.extension:
            return None
        name = rp.attr.name if rp.sub is None else f"{rp.attr.name}.{rp.sub.name}"
        if rp.schema is None:  # common attributes
            return {
                "id": R.id,
                "externalId": R.external_id,
                "meta.created": R.created,
                "meta.lastModified": R.last_modified,
                "meta.resourceType": R.type,
            }.get(name)
        if name == NAME_ATTRIBUTE.get(self.rtype.name):
            return R.user_name_ci
        if name == "displayName":
            return R.display_name_ci
        if name == "active" and self.rtype.name in ACTIVE_TYPES:
            return R.active
        return None

    def _json_path(self, rp: ResolvedPath) -> tuple[str, ...]:
        parts: list[str] = []
        if rp.extension and rp.schema is not None:
            parts.append(rp.schema.id)
        parts.append(rp.attr.name)
        if rp.sub is not None:
            parts.append(rp.sub.name)
        return tuple(parts)

    def _typed(self, expr: Any, attr: Attribute) -> Expr:
        if attr.type == "boolean":
            return expr.as_boolean()  # type: ignore[no-any-return]
        if attr.type in ("integer", "decimal"):
            return expr.as_float()  # type: ignore[no-any-return]
        value = expr.as_string()
        if not attr.case_exact and attr.type in ("string", "reference"):
            return func.lower(value)
        return value  # type: ignore[no-any-return]

    def _json_scalar(self, rp: ResolvedPath) -> Expr:
        self.json_terms += 1
        return self._typed(R.doc[self._json_path(rp)], rp.leaf)

    def _single(self, rp: ResolvedPath, flt: Compare | Present) -> Expr:
        if rp.schema is None and rp.attr.name == "meta" and rp.sub and rp.sub.name == "version":
            return self._version(flt)
        col = self._column(rp)
        if isinstance(flt, Present):
            if col is not None:
                return col.is_not(None)
            self.json_terms += 1
            return R.doc[self._json_path(rp)].as_string().is_not(None) if rp.attr.type != \
                "complex" or rp.sub is not None else self._json_present(rp)
        expr = col if col is not None else self._json_scalar(rp)
        return self._compare(expr, rp.leaf, flt.op, flt)

    def _json_present(self, rp: ResolvedPath) -> Expr:
        path = self._json_path(rp)
        if self.pg:
            return R.doc[path].is_not(None)
        return func.json_type(R.doc, _sqlite_path(path)).is_not(None)

    def _version(self, flt: Compare | Present) -> Expr:
        if isinstance(flt, Present):
            return true()
        if flt.op not in ("eq", "ne") or not isinstance(flt.value, str):
            raise invalid_filter("meta.version supports eq and ne with a string")

        def version(v: Any) -> int:
            digits = str(v).removeprefix("W/").strip('"')
            return int(digits) if digits.isdigit() else -1

        expr = R.version == self._param(flt, version)
        return expr if flt.op == "eq" else not_(expr)

    def _compare(self, expr: Expr, attr: Attribute, op: str, node: Compare) -> Expr:
        """`expr op value`, two-valued; the structure depends only on the value's kind."""
        raw = node.value
        comparable(attr, op, raw)  # rejects what the attribute cannot compare
        if raw is None:
            return expr.is_(None) if op == "eq" else expr.is_not(None)
        numeric = attr.type in ("integer", "decimal")
        if isinstance(raw, bool):
            if attr.type != "boolean":
                return false() if op != "ne" else true()
        elif isinstance(raw, int | float):
            if not numeric:
                return false() if op != "ne" else true()
        elif attr.type in ("boolean", "integer", "decimal"):
            return false() if op != "ne" else true()

        def prep(v: Any) -> Any:
            value = comparable(attr, op, v)
            if numeric:
                return float(value)
            if op == "co":
                return f"%{_like_escape(value)}%"
            if op == "sw":
                return f"{_like_escape(value)}%"
            if op == "ew":
                return f"%{_like_escape(value)}"
            return value

        param = self._param(node, prep)
        if op == "ne":
            return or_(expr != param, expr.is_(None))
        # `x IS NOT NULL AND ...` keeps comparisons two-valued, so NOT(...) over an
        # absent attribute is true, as in the evaluator (SQL NULL would make it unknown).
        return and_(expr.is_not(None), self._operator(expr, op, param))

    @staticmethod
    def _operator(expr: Expr, op: str, value: Any) -> Expr:
        result: Expr
        if op == "eq":
            result = expr == value
        elif op in ("co", "sw", "ew"):
            result = expr.like(value, escape="/")
        elif op == "gt":
            result = expr > value
        elif op == "ge":
            result = expr >= value
        elif op == "lt":
            result = expr < value
        elif op == "le":
            result = expr <= value
        else:
            raise invalid_filter(f"unknown operator {op}")
        return result

    # --- multi-valued -------------------------------------------------------

    def _multi(self, rp: ResolvedPath, flt: Compare | Present) -> Expr:
        """`emails.value co "x"`, `emails co "x"`, `emails pr`: any value matches."""
        if not rp.extension and rp.schema is not None:
            if self.rtype.name == "Group" and rp.attr.name == "members":
                return self._membership(flt, rp.sub.name if rp.sub else "value", "members")
            if self.rtype.name in GROUPED_TYPES and rp.attr.name == "groups":
                return self._membership(flt, rp.sub.name if rp.sub else "value", "groups")
        sub = rp.sub or rp.attr.sub("value")
        if sub is None:
            raise invalid_filter(f"{rp.dotted} has no value sub-attribute")
        if isinstance(flt, Present) and rp.sub is None:
            return self._elements_exist(rp, None)
        if isinstance(flt, Compare) and flt.op == "ne":
            return not_(self._elements_exist(
                rp, lambda e: self._element_term(e, sub, flt, "eq")))
        return self._elements_exist(rp, lambda e: self._element_term(e, sub, flt))

    def _element_term(self, e: Any, sub: Attribute, flt: Compare | Present,
                      op: str | None = None) -> Expr:
        expr = self._typed(self._element_field(e, sub.name), sub)
        if isinstance(flt, Present):
            present: Expr = expr.is_not(None)
            return present
        return self._compare(expr, sub, op or flt.op, flt)

    def _element_field(self, e: Any, name: str) -> Any:
        return e.c.value[name]

    def _elements_exist(self, rp: ResolvedPath, term: Any) -> Expr:
        self.json_terms += 1
        path = self._json_path(ResolvedPath(rp.schema, rp.attr, None, rp.extension))
        if self.pg:
            elements = func.jsonb_array_elements(
                func.coalesce(R.doc[path], cast(literal("[]"), R.doc.type))
            ).table_valued(_json_column("value", self.pg)).alias("e")
        else:
            elements = func.json_each(R.doc, _sqlite_path(path)).table_valued(
                _json_column("value", self.pg)
            ).alias("e")
        stmt = select(literal(1)).select_from(elements)
        if term is not None:
            stmt = stmt.where(term(elements))
        return exists(stmt)

    def _value_path(self, flt: ValuePath) -> Expr:
        rp = resolve_filter_path(self.rtype, flt.path)
        if not rp.attr.multi_valued or rp.attr.type != "complex":
            raise invalid_filter(f"{rp.dotted} is not a multi-valued complex attribute")
        if not rp.extension and self.rtype.name == "Group" and rp.attr.name == "members":
            return self._membership_filter(flt.filter, "members")
        if not rp.extension and self.rtype.name in GROUPED_TYPES and rp.attr.name == "groups":
            return self._membership_filter(flt.filter, "groups")
        return self._elements_exist(rp, lambda e: self._element_filter(e, rp.attr, flt.filter))

    def _element_filter(self, e: Any, parent: Attribute, flt: Filter) -> Expr:
        if isinstance(flt, And):
            return and_(self._element_filter(e, parent, flt.left),
                        self._element_filter(e, parent, flt.right))
        if isinstance(flt, Or):
            return or_(self._element_filter(e, parent, flt.left),
                       self._element_filter(e, parent, flt.right))
        if isinstance(flt, Not):
            return not_(self._element_filter(e, parent, flt.expr))
        if isinstance(flt, Compare | Present):
            if flt.path.urn is not None or flt.path.sub is not None:
                raise invalid_filter(f"{flt.path} is not a sub-attribute of {parent.name}")
            sub = parent.sub(flt.path.attr)
            if sub is None:
                raise invalid_filter(f"{parent.name} has no sub-attribute {flt.path.attr}")
            return self._element_term(e, sub, flt)
        raise invalid_filter("value filters cannot nest")

    # --- memberships (stored relationally) -----------------------------------

    def _membership(self, flt: Compare | Present, sub: str, kind: str) -> Expr:
        if isinstance(flt, Compare) and flt.op == "ne":
            return not_(self._membership_where(
                kind, lambda other: self._member_term(flt, sub, other, "eq")))
        return self._membership_where(kind, lambda other: self._member_term(flt, sub, other))

    def member_filter(self, flt: Filter, other: Any) -> Expr:
        """A `members[...]` value filter over the memberships joined to `other`."""
        self._leaf_index = {id(leaf): i for i, leaf in enumerate(leaves(flt))}
        return self._member_tree(flt, other)

    def _membership_filter(self, flt: Filter, kind: str) -> Expr:
        return self._membership_where(kind, lambda other: self._member_tree(flt, other))

    def _member_tree(self, flt: Filter, other: Any) -> Expr:
        if isinstance(flt, And):
            return and_(self._member_tree(flt.left, other), self._member_tree(flt.right, other))
        if isinstance(flt, Or):
            return or_(self._member_tree(flt.left, other), self._member_tree(flt.right, other))
        if isinstance(flt, Not):
            return not_(self._member_tree(flt.expr, other))
        if isinstance(flt, Compare | Present):
            if flt.path.urn is not None or flt.path.sub is not None:
                raise invalid_filter(f"{flt.path} is not a member sub-attribute")
            return self._member_term(flt, flt.path.attr, other)
        raise invalid_filter("value filters cannot nest")

    def _membership_where(self, kind: str, term: Any) -> Expr:
        other = resources.alias("o")
        if kind == "members":
            own, theirs = M.group_id, M.member_id
        else:
            own, theirs = M.member_id, M.group_id
        stmt = (
            select(literal(1))
            .select_from(memberships.join(other, other.c.id == theirs))
            .where(own == R.id, term(other))
        )
        return exists(stmt)

    def _member_term(self, flt: Compare | Present, sub: str, other: Any,
                     op: str | None = None) -> Expr:
        lsub = sub.lower()
        if lsub == "value":
            attr, expr = Attribute("value", case_exact=True), other.c.id
        elif lsub == "type":
            attr, expr = Attribute("type", case_exact=False), func.lower(other.c.type)
        elif lsub == "display":
            attr, expr = Attribute("display"), other.c.display_name_ci
        else:
            raise invalid_filter(f"unknown member sub-attribute {sub}")
        if isinstance(flt, Present):
            present: Expr = expr.is_not(None)
            return present
        return self._compare(expr, attr, op or flt.op, flt)


def _json_column(name: str, pg: bool) -> Any:
    from sqlalchemy import JSON, column
    from sqlalchemy.dialects.postgresql import JSONB

    return column(name, JSONB() if pg else JSON())


def _sqlite_path(parts: tuple[str, ...]) -> str:
    return "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in parts)

