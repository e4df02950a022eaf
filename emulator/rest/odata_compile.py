"""The compiling half of :mod:`emulator.rest.odata`: odata-query's parse tree to a test of attributes.

Imported on the first filter only, as odata-query's grammar builds its parser tables on import.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from emulator.rest.errors import HttpError
from emulator.rest.odata import TEXT, Attributes, Field, Test, duration_seconds, iso_epoch

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


def compile_filter(expression: str, fields: Mapping[str, Field], bounds: set[tuple[str, str]]) -> Test:
    """The test of ``expression``; adds each (attribute, operator) it compares to ``bounds``."""
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(expression))
    except ODataException as error:
        raise HttpError(400, "the filter is not a valid OData expression", details=[f"{expression!r}: {error}"]) from None
    if tree is None:
        raise HttpError(400, "the filter is empty")
    return _Compiler(fields, bounds, expression).node(tree)


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
