"""OData ``filter`` expressions as NetBackup's REST API takes them, evaluated over answers.

Parsing is odata-query's (the OData 4 grammar: ``and``/``or``/``not``, parentheses,
``eq ne gt ge lt le``, ``contains``/``startswith``/``endswith``, quoted strings, numbers,
ISO 8601 date-times and durations); this module checks an expression against what one
NetBackup path lets clients filter on (attribute, type, operators, per the OpenAPI files)
and turns it into a test of one resource's attributes. Anything else is NetBackup's 400.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException

from emulator.rest.errors import HttpError

Attributes = Mapping[str, Any]
Test = Callable[[Attributes], bool]

COMPARE = frozenset({"eq", "ne", "lt", "gt", "le", "ge"})
EQUALITY = frozenset({"eq", "ne"})
TEXT = frozenset({"contains", "startswith", "endswith"})

_COMPARATORS: dict[type[ast._Comparator], str] = {
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Gt: "gt",
    ast.GtE: "ge",
}
_MIRRORED = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "contains": lambda a, b: b in a,
    "startswith": lambda a, b: a.startswith(b),
    "endswith": lambda a, b: a.endswith(b),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One attribute a path can be filtered on: its type and the operators allowed on it."""

    kind: str  # "integer", "number", "string", "date-time", "duration" or "boolean"
    operators: frozenset[str]


@dataclass(frozen=True, slots=True)
class Filter:
    """A checked filter expression: ``test`` one resource's attributes; which attributes it bounds."""

    test: Test
    bounds: frozenset[tuple[str, str]]  # (attribute, operator) of every comparison in it

    def bounded(self, name: str, *operators: str) -> bool:
        """Whether some comparison of ``name`` uses one of ``operators``."""
        return any((name, op) in self.bounds for op in operators)


def parse_filter(expression: str, fields: Mapping[str, Field]) -> Filter:
    """Check ``expression`` against ``fields``; raise NetBackup's 400 for what it cannot take."""
    # odata-query's grammar builds its parser tables when imported (a few hundred ms): only when a filter comes
    from odata_query.grammar import ODataLexer, ODataParser  # noqa: PLC0415

    try:
        tree = ODataParser().parse(ODataLexer().tokenize(expression))
    except ODataException as error:
        raise HttpError(400, "the filter is not a valid OData expression", details=[f"{expression!r}: {error}"]) from None
    if tree is None:
        raise HttpError(400, "the filter is empty")
    bounds: set[tuple[str, str]] = set()
    test = _Compiler(fields, bounds, expression).node(tree)
    return Filter(test, frozenset(bounds))


def iso_epoch(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 date-time (``Z`` or an offset; naive means UTC)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_seconds(text: str) -> float:
    """Seconds of an ISO 8601 day-time duration such as ``PT5M46S``."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    seconds = sum(float(match[k] or 0) * f for k, f in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)))
    return -seconds if match["sign"] else seconds


class _Compiler:
    def __init__(self, fields: Mapping[str, Field], bounds: set[tuple[str, str]], expression: str) -> None:
        self.fields = fields
        self.bounds = bounds
        self.expression = expression

    def node(self, node: ast._Node) -> Test:
        if isinstance(node, ast.BoolOp):
            left, right = self.node(node.left), self.node(node.right)
            if isinstance(node.op, ast.And):
                return lambda a: left(a) and right(a)
            return lambda a: left(a) or right(a)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.node(node.operand)
            return lambda a: not inner(a)
        if isinstance(node, ast.Compare) and type(node.comparator) in _COMPARATORS:
            op = _COMPARATORS[type(node.comparator)]
            subject, literal = node.left, node.right
            if not isinstance(subject, (ast.Identifier, ast.Attribute)) and isinstance(literal, (ast.Identifier, ast.Attribute)):
                subject, literal, op = literal, subject, _MIRRORED[op]  # `0 eq status` reads as `status eq 0`
            return self.comparison(subject, op, literal)
        if isinstance(node, ast.Call) and node.func.name in TEXT and len(node.args) == 2:
            return self.comparison(node.args[0], node.func.name, node.args[1])
        raise self.unsupported("only comparisons (eq ne gt ge lt le), contains/startswith/endswith, and/or/not are supported")

    def comparison(self, subject: ast._Node, op: str, literal: ast._Node) -> Test:
        name = self.attribute(subject)
        field = self.fields[name]
        if op not in field.operators:
            allowed = " ".join(sorted(field.operators))
            raise HttpError(400, f"the filter cannot use '{op}' on {name}", details=[f"{name} supports: {allowed}"])
        value = self.value(name, field, literal)
        self.bounds.add((name, op))
        compare = _OPERATORS[op]
        kind = field.kind

        def test(attributes: Attributes) -> bool:
            actual = attributes.get(name)
            if actual is None:  # OData: null equals nothing but null
                return op == "ne"
            if kind == "date-time":
                actual = iso_epoch(actual)
            elif kind == "duration":
                actual = duration_seconds(actual)
            return bool(compare(actual, value))

        return test

    def attribute(self, node: ast._Node) -> str:
        if isinstance(node, ast.Identifier) and node.name in self.fields:
            return node.name
        if not isinstance(node, (ast.Identifier, ast.Attribute)):
            raise self.unsupported("a comparison compares an attribute with a value (no arithmetic, no other functions)")
        name = _name(node)
        supported = ", ".join(sorted(self.fields))
        raise HttpError(400, f"the filter cannot use the attribute {name!r}", details=[f"filterable attributes: {supported}"])

    def value(self, name: str, field: Field, node: ast._Node) -> Any:
        try:
            if field.kind == "integer" and isinstance(node, ast.Integer):
                return int(node.val)
            if field.kind == "number" and isinstance(node, (ast.Integer, ast.Float)):
                return float(node.val)
            if field.kind == "string" and isinstance(node, ast.String):
                return node.val
            if field.kind == "boolean" and isinstance(node, ast.Boolean):
                return node.val.lower() == "true"
            if field.kind == "date-time" and isinstance(node, (ast.DateTime, ast.String)):
                return iso_epoch(node.val)
            if field.kind == "date-time" and isinstance(node, ast.Date):
                return iso_epoch(node.val + "T00:00:00Z")
            if field.kind == "duration" and isinstance(node, (ast.Duration, ast.String)):
                return duration_seconds(node.val)
        except ValueError:
            pass
        shown = getattr(node, "val", type(node).__name__)
        raise HttpError(400, f"the filter compares {name} ({field.kind}) with {shown!r}", details=[f"in {self.expression!r}"])

    def unsupported(self, why: str) -> HttpError:
        return HttpError(400, "the filter is not supported", details=[why, f"in {self.expression!r}"])


def _name(node: ast._Node) -> str:
    if isinstance(node, ast.Identifier):
        return node.name
    if isinstance(node, ast.Attribute):
        return f"{_name(node.owner)}/{node.attr}"
    return str(getattr(node, "val", type(node).__name__))
