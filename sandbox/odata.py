"""A small, safe OData ``$filter`` parser (a tokenizer and a recursive-descent parser; nothing is eval'd).

Supported: comparisons ``prop op literal`` (op: eq ne gt ge lt le), ``startswith(prop,'x')``,
``endswith``, lambda ``coll/any(p:p eq 'x')``, ``and`` / ``or`` / ``not`` and parentheses; string
literals in single quotes with ``''`` for a quote, ``true``/``false``/``null``, numbers. Which property
supports which operator is the caller's schema: anything else is :class:`UnsupportedQueryError`
(``Request_UnsupportedQuery``); text that does not parse is :class:`FilterSyntaxError` (``BadRequest``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
FUNCTIONS = ("startswith", "endswith", "contains")


class FilterSyntaxError(ValueError):
    pass


class UnsupportedQueryError(ValueError):
    def __init__(self, prop: str, message: str | None = None) -> None:
        super().__init__(message or prop)
        self.prop = prop


@dataclass(frozen=True)
class Token:
    kind: str  # name, string, number, punct, end
    value: Any
    pos: int


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_@$][\w.@$-]*)|(?P<punct>[()/,:]))"
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterSyntaxError(f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        start = match.start(kind)
        if kind == "string":
            tokens.append(Token("string", raw[1:-1].replace("''", "'"), start))
        elif kind == "number":
            tokens.append(Token("number", float(raw) if "." in raw else int(raw), start))
        else:
            tokens.append(Token(kind, raw, start))
        pos = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


@dataclass(frozen=True)
class Compare:
    prop: str
    op: str
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    prop: str
    value: str


@dataclass(frozen=True)
class AnyOf:
    prop: str
    var: str
    condition: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Compare | Call | AnyOf | BoolOp | Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, token: Token | None = None) -> FilterSyntaxError:
        pos = (token or self.peek()).pos
        return FilterSyntaxError(f"Syntax error at position {pos} in '{self.text}'.")

    def expect(self, kind: str, value: str | None = None) -> Token:
        token = self.take()
        if token.kind != kind or (value is not None and str(token.value).lower() != value):
            raise self.error(token)
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "name" and str(token.value).lower() == word

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.error()
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.is_word("or"):
            self.take()
            node = BoolOp("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.unary()
        while self.is_word("and"):
            self.take()
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.is_word("not"):
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "punct" and token.value == "(":
            self.take()
            node = self.or_expr()
            self.expect("punct", ")")
            return node
        if token.kind != "name":
            raise self.error(token)
        name = str(self.take().value)
        if name.lower() in FUNCTIONS and self.peek().kind == "punct" and self.peek().value == "(":
            self.take()
            prop = self.path()
            self.expect("punct", ",")
            value = self.expect("string").value
            self.expect("punct", ")")
            return Call(name.lower(), prop, str(value))
        prop = self.path(name)
        if prop.lower().endswith("/any") or prop.lower().endswith("/all"):
            collection, _, kind = prop.rpartition("/")
            if kind.lower() == "all":
                raise UnsupportedQueryError(collection)
            self.expect("punct", "(")
            var = str(self.expect("name").value)
            self.expect("punct", ":")
            condition = self.or_expr()
            self.expect("punct", ")")
            return AnyOf(collection, var, condition)
        op_token = self.take()
        if op_token.kind != "name" or str(op_token.value).lower() not in COMPARISONS:
            raise self.error(op_token)
        return Compare(prop, str(op_token.value).lower(), self.literal())

    def path(self, first: str | None = None) -> str:
        parts = [first if first is not None else str(self.expect("name").value)]
        while self.peek().kind == "punct" and self.peek().value == "/":
            self.take()
            parts.append(str(self.expect("name").value))
        return "/".join(parts)

    def literal(self) -> Any:
        token = self.take()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "name":
            lowered = str(token.value).lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "null":
                return None
        raise self.error(token)


def parse_filter(text: str) -> Node:
    return _Parser(text).parse()


Getter = Callable[[Any, str], Any]
"""Reads a property (a ``/``-path) of a record."""


@dataclass(frozen=True)
class Schema:
    """Which operators each filterable property supports; ``collections`` are those usable with ``any``."""

    entity: str
    operators: Mapping[str, frozenset[str]]
    collections: Mapping[str, frozenset[str]]
    getter: Getter

    def check(self, node: Node, var: str | None = None, collection: str | None = None) -> None:
        if isinstance(node, BoolOp):
            self.check(node.left, var, collection)
            self.check(node.right, var, collection)
        elif isinstance(node, Not):
            raise UnsupportedQueryError(
                "not", "UnsupportedQueryError query: 'not' requires advanced query capabilities."
            )
        elif isinstance(node, AnyOf):
            allowed = self.collections.get(node.prop)
            if allowed is None:
                raise UnsupportedQueryError(node.prop)
            self.check(node.condition, node.var, node.prop)
        else:
            op = node.op if isinstance(node, Compare) else node.name
            if var is not None and node.prop == var:
                allowed = self.collections[collection or ""]
            elif node.prop in self.operators:
                allowed = self.operators[node.prop]
            else:
                raise UnsupportedQueryError(node.prop)
            if op not in allowed:
                raise UnsupportedQueryError(node.prop)

    def matches(self, node: Node, record: Any, scope: Mapping[str, Any] | None = None) -> bool:
        if isinstance(node, BoolOp):
            if node.op == "and":
                return self.matches(node.left, record, scope) and self.matches(node.right, record, scope)
            return self.matches(node.left, record, scope) or self.matches(node.right, record, scope)
        if isinstance(node, Not):
            return not self.matches(node.operand, record, scope)
        if isinstance(node, AnyOf):
            items = self.getter(record, node.prop) or []
            return any(self.matches(node.condition, record, {node.var: item}) for item in items)
        value = scope[node.prop] if scope and node.prop in scope else self.getter(record, node.prop)
        if isinstance(node, Call):
            if not isinstance(value, str):
                return False
            text, wanted = value.lower(), node.value.lower()
            return {
                "startswith": text.startswith(wanted),
                "endswith": text.endswith(wanted),
                "contains": wanted in text,
            }[node.name]
        return _compare(value, node.op, node.value)


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op])
    except TypeError:
        return False
