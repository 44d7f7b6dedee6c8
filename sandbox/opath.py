"""A small OPATH parser for ``Get-Mailbox -Filter`` (e.g. ``GrantSendOnBehalfTo -ne $null``).

Grammar: ``expr := term (-or term)*``, ``term := factor (-and factor)*``, ``factor := -not factor |
'(' expr ')' | Property -op value`` with ``-eq -ne -like -notlike -gt -ge -lt -le``; values are
'single' or "double" quoted strings, ``$null``, ``$true``, ``$false``, numbers or bare words.
Multi-valued properties match when any value matches; ``-ne $null`` means "has a value". Nothing is eval'd.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("eq", "ne", "like", "notlike", "gt", "ge", "lt", "le")
_TOKEN = re.compile(
    r"\s*(?:(?P<op>-[A-Za-z]+)|(?P<sq>'(?:[^']|'')*')|(?P<dq>\"(?:[^\"]|\"\")*\")|(?P<var>`?\$[A-Za-z]+)"
    r"|(?P<paren>[()])|(?P<word>[^\s()'\"]+))"
)


class OpathError(ValueError):
    pass


@dataclass(frozen=True)
class Cond:
    prop: str
    op: str
    value: Any


@dataclass(frozen=True)
class Logic:
    op: str
    left: OpathNode
    right: OpathNode


@dataclass(frozen=True)
class Negate:
    operand: OpathNode


OpathNode = Cond | Logic | Negate
_NULL = object()


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    while text[pos:].strip():
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise OpathError(f"Invalid filter syntax at position {pos}: {text!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        pos = match.end()
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise OpathError(f"Invalid filter syntax: unexpected end of {self.text!r}")
        self.i += 1
        return token

    def is_op(self, name: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1].lower() == "-" + name

    def parse(self) -> OpathNode:
        node = self.expr()
        if self.peek() is not None:
            raise OpathError(f"Invalid filter syntax near {self.peek()[1]!r} in {self.text!r}")  # type: ignore[index]
        return node

    def expr(self) -> OpathNode:
        node = self.term()
        while self.is_op("or"):
            self.take()
            node = Logic("or", node, self.term())
        return node

    def term(self) -> OpathNode:
        node = self.factor()
        while self.is_op("and"):
            self.take()
            node = Logic("and", node, self.factor())
        return node

    def factor(self) -> OpathNode:
        if self.is_op("not"):
            self.take()
            return Negate(self.factor())
        kind, value = self.take()
        if kind == "paren" and value == "(":
            node = self.expr()
            if self.take() != ("paren", ")"):
                raise OpathError(f"Invalid filter syntax: missing ')' in {self.text!r}")
            return node
        if kind != "word":
            raise OpathError(f"Invalid filter syntax near {value!r} in {self.text!r}")
        op_kind, op = self.take()
        if op_kind != "op" or op[1:].lower() not in OPERATORS:
            raise OpathError(f"Invalid filter syntax: expected a comparison operator after {value!r}")
        return Cond(value, op[1:].lower(), self.value())

    def value(self) -> Any:
        kind, raw = self.take()
        if kind == "sq":
            return raw[1:-1].replace("''", "'")
        if kind == "dq":
            return raw[1:-1].replace('""', '"')
        if kind == "var":
            name = raw.lstrip("`$").lower()
            if name == "null":
                return _NULL
            if name in ("true", "false"):
                return name == "true"
            raise OpathError(f"Invalid filter syntax: unknown variable {raw!r}")
        if kind == "word":
            return raw
        raise OpathError(f"Invalid filter syntax near {raw!r} in {self.text!r}")


def parse_opath(text: str) -> OpathNode:
    return _Parser(text).parse()


def properties(node: OpathNode) -> set[str]:
    if isinstance(node, Cond):
        return {node.prop}
    if isinstance(node, Negate):
        return properties(node.operand)
    return properties(node.left) | properties(node.right)


def evaluate(node: OpathNode, record: Mapping[str, Any]) -> bool:
    """``record`` keys are compared case-insensitively (OPATH property names are)."""
    if isinstance(node, Logic):
        if node.op == "and":
            return evaluate(node.left, record) and evaluate(node.right, record)
        return evaluate(node.left, record) or evaluate(node.right, record)
    if isinstance(node, Negate):
        return not evaluate(node.operand, record)
    key = next((k for k in record if k.lower() == node.prop.lower()), None)
    value = record.get(key) if key is not None else None
    values = value if isinstance(value, list) else ([] if value is None or value == "" else [value])
    if node.value is _NULL:
        has_value = bool(values)
        return has_value if node.op == "ne" else not has_value if node.op == "eq" else False
    matches = [_match(v, node.op.removeprefix("not"), node.value) for v in values]
    if node.op in ("ne", "notlike"):
        return not any(_match(v, "eq" if node.op == "ne" else "like", node.value) for v in values)
    return any(matches)


def _match(value: Any, op: str, wanted: Any) -> bool:
    if isinstance(value, bool) or isinstance(wanted, bool):
        return op == "eq" and str(value).lower() == str(wanted).lower()
    left, right = str(value).lower(), str(wanted).lower()
    if op == "eq":
        return left == right
    if op == "like":
        return fnmatch.fnmatchcase(left, right)
    try:
        a, b = float(left), float(right)
    except ValueError:
        a, b = left, right  # type: ignore[assignment]
    return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}.get(op, False))
