"""A parser for the FHIRPath subset SQL on FHIR v2 views use, producing a small AST.

Precedence follows the FHIRPath grammar: invocation and indexer, unary sign, multiplicative,
additive (with `&`), type operators, union `|`, inequality, equality, membership, `and`, `or`/`xor`,
`implies`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from pipelines.sof.errors import ViewDefinitionError


@dataclass(frozen=True)
class Node:
    """Base of the AST."""


@dataclass(frozen=True)
class Literal(Node):
    value: object
    type: str  # string | integer | decimal | boolean | date | dateTime | time | empty


@dataclass(frozen=True)
class Constant(Node):
    name: str  # %name (environment variable or view constant)


@dataclass(frozen=True)
class This(Node):
    pass


@dataclass(frozen=True)
class Member(Node):
    name: str


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Path(Node):
    left: Node
    right: Node  # a Member or Call evaluated with `left`'s result as its focus


@dataclass(frozen=True)
class Index(Node):
    target: Node
    index: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<datetime>@\d{4}(?:-\d{2}(?:-\d{2})?)?(?:T[\d:.]*(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<time>@T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<quoted>`(?:[^`\\]|\\.)*`)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<special>[%$][A-Za-z_][A-Za-z0-9_]*|%`(?:[^`\\]|\\.)*`|%'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|!~|[-+*/&|=~<>(),.\[\]{}])
    """,
    re.VERBOSE,
)

_BINARY_POWER = {
    "implies": 1,
    "or": 2,
    "xor": 2,
    "and": 3,
    "in": 4,
    "contains": 4,
    "=": 5,
    "~": 5,
    "!=": 5,
    "!~": 5,
    "<": 6,
    ">": 6,
    "<=": 6,
    ">=": 6,
    "|": 7,
    "is": 8,
    "as": 8,
    "+": 9,
    "-": 9,
    "&": 9,
    "*": 10,
    "/": 10,
    "div": 10,
    "mod": 10,
}
_UNARY_POWER = 11
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/"}


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ViewDefinitionError(f"FHIRPath: unexpected character at position {pos} in {text!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            expected = f" {value!r}" if value else ""
            raise ViewDefinitionError(f"FHIRPath: expected{expected} in {self.text!r}")
        self.pos += 1
        return token

    def expression(self, min_power: int = 0) -> Node:
        left = self.prefix()
        while True:
            token = self.peek()
            if token is None or token[0] not in ("op", "ident"):
                return left
            op = token[1]
            power = _BINARY_POWER.get(op)
            if power is None or power <= min_power or (token[0] == "ident" and op not in _BINARY_POWER):
                return left
            self.take()
            if op in ("is", "as"):
                type_name = self.take()[1]
                left = Path(left, Call("ofType" if op == "as" else "is", (Member(type_name),)))
                continue
            left = Binary(op, left, self.expression(power))

    def prefix(self) -> Node:
        token = self.peek()
        if token is not None and token[1] in ("+", "-") and token[0] == "op":
            self.take()
            return Unary(token[1], self.postfix(self.term()))
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token == ("op", "."):
                self.take()
                node = Path(node, self.invocation())
            elif token == ("op", "["):
                self.take()
                index = self.expression()
                self.take("]")
                node = Index(node, index)
            else:
                return node

    def invocation(self) -> Node:
        kind, value = self.take()
        if kind == "quoted":
            return Member(_unescape(value[1:-1]))
        if kind != "ident":
            raise ViewDefinitionError(f"FHIRPath: expected a name after '.' in {self.text!r}")
        if self.peek() == ("op", "("):
            return Call(value, self.arguments())
        return Member(value)

    def arguments(self) -> tuple[Node, ...]:
        self.take("(")
        args: list[Node] = []
        if self.peek() != ("op", ")"):
            args.append(self.expression())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.expression())
        self.take(")")
        return tuple(args)

    def term(self) -> Node:
        token = self.peek()
        if token is None:
            raise ViewDefinitionError(f"FHIRPath: unexpected end of {self.text!r}")
        kind, value = token
        if kind == "op" and value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "op" and value == "{":
            self.take()
            self.take("}")
            return Literal(None, "empty")
        self.take()
        if kind == "string":
            return Literal(_unescape(value[1:-1]), "string")
        if kind == "number":
            if "." in value:
                return Literal(Decimal(value), "decimal")
            return Literal(int(value), "integer")
        if kind == "datetime":
            text = value[1:]
            return Literal(text, "dateTime" if "T" in text else "date")
        if kind == "time":
            return Literal(value[2:], "time")
        if kind == "special":
            if value == "$this":
                return This()
            if value.startswith("%"):
                name = value[1:]
                return Constant(_unescape(name[1:-1]) if name[:1] in "`'" else name)
            raise ViewDefinitionError(f"FHIRPath: {value} is not supported")
        if kind == "quoted":
            return Member(_unescape(value[1:-1]))
        if kind == "ident":
            if value in ("true", "false"):
                return Literal(value == "true", "boolean")
            if self.peek() == ("op", "("):
                return Call(value, self.arguments())
            return Member(value)
        raise ViewDefinitionError(f"FHIRPath: unexpected {value!r} in {self.text!r}")


def parse(text: str) -> Node:
    """Parse one FHIRPath expression; a `ViewDefinitionError` names what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ViewDefinitionError("FHIRPath: an expression must be a non-empty string")
    parser = _Parser(text)
    node = parser.expression()
    if parser.peek() is not None:
        raise ViewDefinitionError(f"FHIRPath: unexpected {parser.peek()[1]!r} in {text!r}")  # type: ignore[index]
    return node
