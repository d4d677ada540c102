"""Formulas typed by desk users, parsed and evaluated over a bars frame -- never by Python.

A formula is one arithmetic/logical expression over the bars' series and the registry's
indicators::

    ema(close, 20) - ema(close, 50)
    rsi(close, 14) > 70
    (close - sma(close, 20)) / atr(high, low, close, 14)
    macd(close, 12, 26, 9).macdhist
    crossover(ema(close, 9), ema(close, 21))

:func:`parse` turns the text into a validated :class:`Formula` (every name, function, argument
and parameter checked, constants folded); :func:`evaluate` computes it over bars and returns a
``pd.Series`` on the bars' index (float64, or bool for comparisons and logic). Nothing of the
text is ever given to ``eval``/``exec``/``compile`` or to Python's parser: a small tokenizer and a
Pratt (precedence-climbing) parser of our own accept only the grammar below, and the evaluator
only ever calls the whitelisted numpy operations and registry indicators.

**Grammar** (loosest first; Python's precedence)::

    formula  := expr                                 (at most 500 characters)
    expr     := expr 'or' expr | expr 'and' expr | 'not' expr
              | sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)*     (chains: a < b < c)
    sum      := sum ('+' | '-') term | term
    term     := term ('*' | '/') unary | unary
    unary    := ('-' | '+') unary | power
    power    := atom ['**' unary]        (right-associative; |constant exponent| <= 100)
    atom     := NUMBER | SERIES | call ['.' OUTPUT] | '(' expr ')'
    call     := FUNCTION '(' [arg (',' arg)*] ')'
    arg      := expr | PARAM '=' expr

Names are case-insensitive. Nesting (parentheses, calls, unary operators, powers) is limited to
50 levels.

**Series**: ``open high low close volume ask_volume bid_volume delta trades open_interest``
(bar columns; ``delta`` is derived from ask/bid volume when the bars lack it) and ``hl2``
``hlc3`` ``ohlc4``.

**Functions**: every registry indicator by its lower-case name (``ema``, ``rsi``, ``atr``,
``macd``...): positional arguments fill the indicator's inputs first (any series-valued
expression: ``rsi(delta, 14)``, ``ema(rsi(close, 14), 5)``), then its parameters in order
(constant numbers, validated by the registry); keywords name an input or a parameter
(``bbands(close, 20, nbdevup=2.5)``). An indicator with several outputs needs one picked:
``macd(close).macdhist``. Helpers (they take precedence over registry names): ``abs(x)``,
``min(a, b, ...)``/``max(a, b, ...)`` (elementwise), ``shift(x, n)`` (value ``n >= 0`` bars
ago; no look-ahead), ``crossover(a, b)``, ``crossunder(a, b)``, ``iff(cond, a, b)`` (alias
``where``), ``and(a, b, ...)``, ``or(a, b, ...)``, ``not(x)``. Since ``min``/``max`` are the
elementwise helpers, TA-Lib's rolling ``MIN``/``MAX`` are reachable as ``lowest(x, n)`` and
``highest(x, n)``.

**Values**: arithmetic is float64 (booleans count as 0/1); division by zero gives NaN, as do
``0 ** negative`` and exponents above 100 in magnitude inside a series; comparisons with NaN are
false; in ``and``/``or``/``not``/``iff`` a number is true when it is non-zero and not NaN.

**Errors**: :class:`FormulaError` (a ``ValueError``) with ``position`` (0-based character
offset), ``length`` and a message naming the offending part and its column; ``str()`` adds the
formula and a caret line under that part.

This module imports numpy, pandas, the indicator registry and ``tradeflow.model`` only; it does
no I/O.
"""
from __future__ import annotations

import builtins as _builtins
import copy
import difflib
import keyword
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from indicators.registry import REGISTRY, Indicator, IndicatorError
from tradeflow.model import BAR_COLUMNS

__all__ = ["FormulaError", "Formula", "parse", "evaluate", "SERIES", "HELPERS", "MAX_LENGTH",
           "MAX_DEPTH", "MAX_EXPONENT", "MAX_SHIFT"]

MAX_LENGTH = 500       # characters in a formula
MAX_DEPTH = 50         # nesting levels (parentheses, calls, unary operators, powers)
MAX_EXPONENT = 100     # largest |exponent| of '**'
MAX_SHIFT = 1_000_000  # largest n of shift(x, n)

BAR_SERIES = tuple(c for c in BAR_COLUMNS if c != "ts")  # open, high, ..., open_interest
DERIVED_SERIES = {"hl2": ("high", "low"), "hlc3": ("high", "low", "close"),
                  "ohlc4": ("open", "high", "low", "close")}
SERIES = BAR_SERIES + tuple(DERIVED_SERIES)

# helper name -> (min args, max args or None, usage)
HELPERS: dict[str, tuple[int, int | None, str]] = {
    "abs": (1, 1, "abs(x)"),
    "min": (2, None, "min(a, b, ...)"),
    "max": (2, None, "max(a, b, ...)"),
    "shift": (2, 2, "shift(x, n)"),
    "crossover": (2, 2, "crossover(a, b)"),
    "crossunder": (2, 2, "crossunder(a, b)"),
    "iff": (3, 3, "iff(cond, a, b)"),
    "where": (3, 3, "where(cond, a, b)"),
    "and": (2, None, "and(a, b, ...)"),
    "or": (2, None, "or(a, b, ...)"),
    "not": (1, 1, "not(x)"),
}
# names that reach a registry indicator the helpers shadow (used when the registry lacks them)
ALIASES = {"highest": "MAX", "lowest": "MIN"}

_FORBIDDEN_WORDS = {w.lower() for w in keyword.kwlist} - {"and", "or", "not"}
_PY_BUILTINS = {n.lower() for n in dir(_builtins)}
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_NUMBER, _BOOL = "number", "bool"


# --------------------------------------------------------------------------------------------
# Errors


def _excerpt(text: str, pos: int, length: int, width: int = 100) -> tuple[str, str]:
    """The formula (or a window of it around ``pos``) and the caret line under the part."""
    shown = "".join(c if c.isprintable() else " " for c in text)
    start, end, pre, post = 0, len(shown), "", ""
    if len(shown) > width:
        start = max(0, min(pos - width // 3, len(shown) - width))
        end = min(len(shown), start + width)
        pre = "..." if start > 0 else ""
        post = "..." if end < len(shown) else ""
    line = pre + shown[start:end] + post
    col = len(pre) + pos - start
    n = max(1, min(length, end - pos if pos < end else 1))
    return line, " " * col + "^" * n


class FormulaError(ValueError):
    """A formula was refused: bad syntax, an unknown name, a wrong argument, a forbidden
    construct, or an indicator that could not be computed.

    ``position`` is the 0-based character offset of the offending part and ``length`` its
    length; ``reason`` says what is wrong (quoting the part), ``message`` adds its column (and
    a hint), ``str()`` adds the formula with a caret line under the part.
    """

    def __init__(self, reason: str, text: str = "", position: int = 0, length: int = 1,
                 detail: str = ""):
        self.reason = reason
        self.text = text
        self.position = int(position)
        self.length = max(1, int(length))
        self.detail = detail
        self.column = self.position + 1
        self.message = f"{reason} at column {self.column}{detail}"
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.text:
            return self.message
        line, caret = _excerpt(self.text, self.position, self.length)
        return f"{self.message}\n{line}\n{caret}"

    def __reduce__(self):
        return (type(self), (self.reason, self.text, self.position, self.length, self.detail))


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


# --------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class Token:
    kind: str   # "num", "name", "op", "end", "bad" (refused: value is (reason, detail))
    text: str
    pos: int
    end: int
    value: Any = None


_TWO_CHAR_OPS = ("**", "<=", ">=", "==", "!=")
_ONE_CHAR_OPS = "+-*/(),.<>="
_BAD_CHARS = {  # refused characters: the hint that follows "'x' is not allowed"
    "'": "strings are not allowed", '"': "strings are not allowed",
    "[": "no subscripts or lists", "]": "no subscripts or lists",
    "{": "no dicts or sets", "}": "no dicts or sets",
    ":": "no lambdas, slices or annotations",
    ";": "a formula is one expression",
    "&": "use 'and'", "|": "use 'or'", "!": "use 'not' (or '!=' to compare)",
    "~": "use 'not'", "^": "use '**' for powers", "%": "the modulo operator is not supported",
    "@": "no decorators or matrix products", "#": "no comments",
    "\\": "no backslashes", "`": "no backticks", "$": "no variables", "?": "no conditionals",
}


def _is_name_start(c: str) -> bool:
    return c.isascii() and (c.isalpha() or c == "_")


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _tokenize(text: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c.isascii() and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit())):
            j = i
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            is_float = False
            if j < n and text[j] == ".":
                is_float = True
                j += 1
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k].isascii() and text[k].isdigit():
                    is_float = True
                    j = k
                    while j < n and text[j].isascii() and text[j].isdigit():
                        j += 1
            if j < n and _is_name_char(text[j]):
                k = j
                while k < n and _is_name_char(text[k]):
                    k += 1
                toks.append(Token("bad", text[i:k], i, k,
                                  (f"malformed number {text[i:k]!r}", "")))
                i = k
                continue
            lit = text[i:j]
            value: float | int = float(lit) if (is_float or len(lit) > 15) else int(lit)
            if not math.isfinite(value):
                toks.append(Token("bad", lit, i, j, (f"number {lit!r} is too large", "")))
            else:
                toks.append(Token("num", lit, i, j, value))
            i = j
            continue
        if _is_name_start(c):
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            word = text[i:j]
            low = word.lower()
            if low in ("and", "or", "not"):  # operators (and/or also as functions)
                toks.append(Token("op", low, i, j, low))
            else:
                toks.append(Token("name", word, i, j, low))
            i = j
            continue
        two = text[i:i + 2]
        if two in _TWO_CHAR_OPS:
            toks.append(Token("op", two, i, i + 2, two))
            i += 2
            continue
        if two == "//":
            toks.append(Token("bad", two, i, i + 2,
                              ("floor division '//' is not supported", "; use floor(a / b)")))
            i += 2
            continue
        if c in _ONE_CHAR_OPS:
            toks.append(Token("op", c, i, i + 1, c))
            i += 1
            continue
        if c in ("'", '"'):
            j = text.find(c, i + 1)
            j = n if j < 0 else j + 1
            toks.append(Token("bad", text[i:j], i, j,
                              (f"string {text[i:j]} is not allowed",
                               "; formulas have no strings")))
            i = j
            continue
        if c in _BAD_CHARS:
            toks.append(Token("bad", c, i, i + 1, (f"{c!r} is not allowed", f"; {_BAD_CHARS[c]}")))
        else:
            toks.append(Token("bad", c, i, i + 1, (f"unexpected character {c!r}", "")))
        i += 1
    toks.append(Token("end", "", n, n + 1))
    return toks


# --------------------------------------------------------------------------------------------
# The tree


class _NotConst:
    def __repr__(self):
        return "<not constant>"


NOT_CONST = _NotConst()


class Node:
    """A validated node of a formula's tree: its span in the text (``pos``, ``end``), its kind
    (``"number"`` or ``"bool"``), its value when it is a constant (else ``NOT_CONST``) and a
    canonical ``key`` (equal keys compute equal values)."""

    __slots__ = ("pos", "end", "kind", "value", "key")

    def __init__(self, pos: int, end: int, kind: str, key: str, value: Any = NOT_CONST):
        self.pos, self.end, self.kind, self.key, self.value = pos, end, kind, key, value

    @property
    def is_const(self) -> bool:
        return self.value is not NOT_CONST

    def children(self) -> tuple["Node", ...]:
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key})"


class Const(Node):
    __slots__ = ()

    def __init__(self, value, pos: int, end: int):
        kind = _BOOL if isinstance(value, (bool, np.bool_)) else _NUMBER
        super().__init__(pos, end, kind, repr(value), value)


class SeriesRef(Node):
    __slots__ = ("name",)

    def __init__(self, name: str, pos: int, end: int):
        super().__init__(pos, end, _NUMBER, name)
        self.name = name


class Unary(Node):
    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: Node, pos: int, end: int):
        kind = _BOOL if op == "not" else _NUMBER
        super().__init__(pos, end, kind, f"({op} {operand.key})")
        self.op, self.operand = op, operand

    def children(self):
        return (self.operand,)


class Binary(Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Node, right: Node):
        super().__init__(left.pos, right.end, _NUMBER, f"({left.key} {op} {right.key})")
        self.op, self.left, self.right = op, left, right

    def children(self):
        return (self.left, self.right)


class Compare(Node):
    __slots__ = ("ops", "operands")

    def __init__(self, ops: tuple[str, ...], operands: tuple[Node, ...]):
        key = operands[0].key + "".join(f" {o} {x.key}" for o, x in zip(ops, operands[1:]))
        super().__init__(operands[0].pos, operands[-1].end, _BOOL, f"({key})")
        self.ops, self.operands = ops, operands

    def children(self):
        return self.operands


class Logic(Node):
    __slots__ = ("op", "operands")

    def __init__(self, op: str, operands: tuple[Node, ...], pos: int, end: int):
        super().__init__(pos, end, _BOOL, f"({f' {op} '.join(x.key for x in operands)})")
        self.op, self.operands = op, operands

    def children(self):
        return self.operands


class Call(Node):
    """A registry indicator (``indicator`` set; ``args`` its inputs in order, ``params`` the
    parameters given, validated; ``output`` the output picked) or a helper (``helper`` set;
    ``args`` its arguments, ``params`` e.g. shift's ``n``)."""

    __slots__ = ("name", "indicator", "helper", "args", "params", "output")

    def __init__(self, name: str, args: tuple[Node, ...], params: dict, pos: int, end: int,
                 kind: str = _NUMBER, indicator: Indicator | None = None,
                 helper: str | None = None, output: str | None = None):
        inner = ", ".join([a.key for a in args] + [f"{k}={v!r}" for k, v in params.items()])
        super().__init__(pos, end, kind, f"{name}({inner})" + (f".{output}" if output else ""))
        self.name, self.indicator, self.helper = name, indicator, helper
        self.args, self.params, self.output = args, params, output

    def children(self):
        return self.args


def _respan(node: Node, pos: int, end: int) -> Node:
    node = copy.copy(node)
    node.pos, node.end = pos, end
    return node


# --------------------------------------------------------------------------------------------
# Value operations (shared by constant folding and evaluation)


def _num(x):
    """Numbers as float64 (booleans as 0/1)."""
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.float64 else x.astype(np.float64)
    return np.float64(x)


def _truth(x):
    """Booleans as they are; numbers true when non-zero and not NaN."""
    if isinstance(x, np.ndarray):
        if x.dtype == np.bool_:
            return x
        return (x != 0) & ~np.isnan(x)
    if isinstance(x, (bool, np.bool_)):
        return np.bool_(x)
    return np.bool_(x != 0 and not math.isnan(x))


def _arith(op: str, a, b):
    a, b = _num(a), _num(b)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return np.where(b == 0, np.nan, np.true_divide(a, b))
    if op == "**":
        out = np.power(a, b)
        bad = (np.abs(b) > MAX_EXPONENT) | ((a == 0) & (b < 0))
        return np.where(bad, np.nan, out)
    raise AssertionError(op)


_COMPARE_FUNCS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                  "==": np.equal, "!=": np.not_equal}


def _compare(ops, values):
    out = None
    for op, a, b in zip(ops, values, values[1:]):
        r = _COMPARE_FUNCS[op](_num(a), _num(b))
        out = r if out is None else (out & r)
    return out


def _logic(op: str, values):
    out = _truth(values[0])
    for v in values[1:]:
        out = (out & _truth(v)) if op == "and" else (out | _truth(v))
    return out


def _iff(cond, a, b):
    c = _truth(cond)
    if _is_bool(a) and _is_bool(b):
        return np.where(c, a, b)
    return np.where(c, _num(a), _num(b))


def _is_bool(x) -> bool:
    return (isinstance(x, np.ndarray) and x.dtype == np.bool_) or isinstance(x, (bool, np.bool_))


def _shifted(x: np.ndarray, n: int) -> np.ndarray:
    if n == 0:
        return x.copy()
    out = np.empty_like(x)
    out[:n] = False if x.dtype == np.bool_ else np.nan
    out[n:] = x[:-n] if n < len(x) else x[:0]
    return out


def _scalar(v):
    """A folded constant as a plain Python value."""
    v = np.asarray(v)
    if v.dtype == np.bool_:
        return bool(v)
    return float(v)


# --------------------------------------------------------------------------------------------
# The parser


_LBP = {"or": 10, "and": 20, "<": 40, "<=": 40, ">": 40, ">=": 40, "==": 40, "!=": 40,
        "+": 50, "-": 50, "*": 60, "/": 60, "**": 80, "(": 90, ".": 90, "=": 1}
_UNARY_RBP = 70
_NOT_RBP = 30


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    # -- helpers -----------------------------------------------------------------------------

    def error(self, reason: str, pos: int, end: int, detail: str = "") -> FormulaError:
        return FormulaError(reason, self.text, pos, end - pos, detail)

    def part(self, node_or_tok) -> str:
        return repr(self.text[node_or_tok.pos:node_or_tok.end])

    def peek(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind == "bad":
            raise self.error(tok.value[0], tok.pos, tok.end, tok.value[1])
        return tok

    def advance(self) -> Token:
        tok = self.peek()
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text == text

    def unexpected(self, tok: Token, expected: str = "") -> FormulaError:
        if tok.kind == "end":
            return self.error("the formula ends too early", tok.pos, tok.pos + 1,
                              f"; expected {expected}" if expected else "")
        what = {"num": "number", "name": "name"}.get(tok.kind, "")
        reason = f"unexpected {what + ' ' if what else ''}{tok.text!r}"
        return self.error(reason, tok.pos, tok.end,
                          f"; expected {expected}" if expected else "")

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nesting deeper than {MAX_DEPTH} levels at {tok.text!r}",
                             tok.pos, tok.end, "; simplify the formula")

    def leave(self) -> None:
        self.depth -= 1

    # -- the Pratt loop ----------------------------------------------------------------------

    def parse(self) -> Node:
        node = self.expression(0)
        tok = self.peek()
        if tok.kind != "end":
            if tok.text == ")":
                raise self.error("unmatched ')'", tok.pos, tok.end)
            raise self.unexpected(tok, "an operator or the end of the formula")
        return node

    def lbp(self, tok: Token) -> int:
        return _LBP.get(tok.text, 0) if tok.kind == "op" else 0

    def expression(self, rbp: int) -> Node:
        left = self.nud(self.advance())
        while self.lbp(self.peek()) > rbp:
            left = self.led(self.advance(), left)
        return left

    def nud(self, tok: Token) -> Node:
        if tok.kind == "num":
            return Const(tok.value, tok.pos, tok.end)
        if tok.kind == "name":
            self.check_name(tok)
            if self.at("("):
                return self.call(tok)
            return self.series(tok)
        if tok.kind == "op":
            if tok.text == "(":
                if self.at(")"):
                    close = self.advance()
                    raise self.error("empty parentheses '()'", tok.pos, close.end)
                self.enter(tok)
                inner = self.expression(0)
                self.leave()
                close = self.peek()
                if not (close.kind == "op" and close.text == ")"):
                    raise self.unexpected(close, f"')' to close the '(' at column {tok.pos + 1}")
                self.advance()
                return _respan(inner, tok.pos, close.end)
            if tok.text in ("-", "+"):
                self.enter(tok)
                operand = self.expression(_UNARY_RBP)
                self.leave()
                return self.unary(tok.text, operand, tok.pos)
            if tok.text == "not":
                self.enter(tok)
                operand = self.expression(_NOT_RBP)
                self.leave()
                return self.unary("not", operand, tok.pos)
            if tok.text in ("and", "or") and self.at("("):
                return self.call(tok)
            if tok.text in ("and", "or"):
                raise self.error(f"{tok.text!r} needs something on its left", tok.pos, tok.end)
            if tok.text == ")":
                raise self.error("unexpected ')'", tok.pos, tok.end, "; expected an expression")
        raise self.unexpected(tok, "an expression")

    def led(self, tok: Token, left: Node) -> Node:
        op = tok.text
        if op in ("+", "-", "*", "/"):
            right = self.expression(_LBP[op])
            return self.binary(op, left, right)
        if op == "**":
            self.enter(tok)
            right = self.expression(_UNARY_RBP)
            self.leave()
            if right.is_const and (not math.isfinite(float(right.value))
                                   or abs(float(right.value)) > MAX_EXPONENT):
                raise self.error(f"exponent {self.part(right)} is too large", right.pos,
                                 right.end, f"; the limit is {MAX_EXPONENT} in magnitude")
            return self.binary("**", left, right)
        if op in _COMPARISONS:
            ops, operands = [op], [left, self.expression(40)]
            while self.peek().kind == "op" and self.peek().text in _COMPARISONS:
                ops.append(self.advance().text)
                operands.append(self.expression(40))
            node = Compare(tuple(ops), tuple(operands))
            if all(x.is_const for x in operands):
                return Const(_scalar(_compare(ops, [x.value for x in operands])), node.pos,
                             node.end)
            return node
        if op in ("and", "or"):
            right = self.expression(_LBP[op])
            operands = (left.operands if isinstance(left, Logic) and left.op == op
                        else (left,)) + (right,)
            return self.logic(op, operands, left.pos, right.end)
        if op == ".":
            nxt = self.tokens[self.i]
            end = nxt.end if nxt.kind == "name" else tok.end
            what = self.text[tok.pos:end]
            raise self.error(f"attribute access {what!r} is not allowed", tok.pos, end,
                             "; '.' only picks an output of an indicator with several, "
                             "e.g. macd(close, 12, 26, 9).macdhist")
        if op == "(":
            raise self.error(f"{self.part(left)} is not a function and cannot be called",
                             left.pos, tok.end)
        if op == "=":
            raise self.error("'=' is not allowed here", tok.pos, tok.end,
                             "; use '==' to compare (name=value only names an argument of a "
                             "function)")
        raise self.unexpected(tok)

    # -- building validated nodes ------------------------------------------------------------

    def check_name(self, tok: Token) -> None:
        if tok.text.startswith("_"):
            raise self.error(f"name {tok.text!r} is not allowed", tok.pos, tok.end,
                             "; names starting with '_' are reserved")
        if tok.value in _FORBIDDEN_WORDS:
            raise self.error(f"{tok.text!r} is not allowed in a formula", tok.pos, tok.end,
                             "; a formula is one expression of series, numbers, operators "
                             "and functions")

    def series(self, tok: Token) -> Node:
        name = tok.value
        if name in SERIES:
            return SeriesRef(name, tok.pos, tok.end)
        if name in HELPERS or name in ALIASES or name in REGISTRY:
            raise self.error(f"{tok.text!r} is a function, not a series", tok.pos, tok.end,
                             f"; call it, e.g. {name}(close, ...)")
        raise self.error(f"unknown series {tok.text!r}", tok.pos, tok.end,
                         _suggest(name, SERIES) or f"; the series are {', '.join(SERIES)}")

    def unary(self, op: str, operand: Node, pos: int) -> Node:
        if op == "+":
            node = _respan(operand, pos, operand.end)
            if node.kind == _BOOL and node.is_const:
                return Const(float(node.value), pos, operand.end)
            if node.kind == _BOOL:
                return Binary("+", Const(0.0, pos, pos), operand)
            return node
        if operand.is_const:
            value = ~_truth(operand.value) if op == "not" else -_num(operand.value)
            return Const(_scalar(value), pos, operand.end)
        return Unary(op, operand, pos, operand.end)

    def binary(self, op: str, left: Node, right: Node) -> Node:
        node = Binary(op, left, right)
        if left.is_const and right.is_const:
            with np.errstate(all="ignore"):
                return Const(_scalar(_arith(op, left.value, right.value)), node.pos, node.end)
        return node

    def logic(self, op: str, operands: tuple[Node, ...], pos: int, end: int) -> Node:
        node = Logic(op, operands, pos, end)
        if all(x.is_const for x in operands):
            return Const(_scalar(_logic(op, [x.value for x in operands])), pos, end)
        return node

    def call(self, name_tok: Token) -> Node:
        name = name_tok.value
        # resolve the function first: an unknown name is the leftmost error
        ind: Indicator | None = None
        if name not in HELPERS:
            if name in REGISTRY:
                ind = REGISTRY.get(name)
            elif name in ALIASES and ALIASES[name].lower() in REGISTRY:
                ind = REGISTRY.get(ALIASES[name])
            elif name in SERIES:
                raise self.error(f"{name_tok.text!r} is a series, not a function",
                                 name_tok.pos, name_tok.end, f"; use it as it is: {name}")
            else:
                raise self.unknown_function(name_tok)
        args, kwargs, end = self.arguments()
        if ind is None:
            node = self.helper(name_tok, args, kwargs, end)
        else:
            node = self.indicator(name_tok, ind, args, kwargs, end)
        return node

    def unknown_function(self, tok: Token) -> FormulaError:
        name = tok.value
        if name in _PY_BUILTINS:
            detail = ("; formulas run no Python: they call only indicators (ema, rsi, atr, ...)"
                      f" and the helpers {', '.join(HELPERS)}")
        else:
            detail = _suggest(name, list(HELPERS) + list(ALIASES)
                              + [i.key for i in REGISTRY])
        return self.error(f"unknown function {tok.text!r}", tok.pos, tok.end, detail)

    def arguments(self):
        """``(`` args ``)``: the positional nodes, the keywords (name -> (token, node)) and
        the end offset."""
        lparen = self.advance()
        self.enter(lparen)
        args: list[Node] = []
        kwargs: dict[str, tuple[Token, Node]] = {}
        if not self.at(")"):
            while True:
                tok = self.peek()
                nxt = self.tokens[self.i + 1] if tok.kind != "end" else tok
                if tok.kind == "name" and nxt.kind == "op" and nxt.text == "=":
                    self.check_name(tok)
                    self.advance()
                    self.advance()
                    value = self.expression(0)
                    if tok.value in kwargs:
                        raise self.error(f"argument {tok.text!r} is given twice", tok.pos,
                                         value.end)
                    kwargs[tok.value] = (tok, value)
                else:
                    value = self.expression(0)
                    if kwargs:
                        raise self.error(f"positional argument {self.part(value)} follows a "
                                         "keyword argument", value.pos, value.end)
                    args.append(value)
                sep = self.peek()
                if sep.kind == "op" and sep.text == ",":
                    self.advance()
                    if self.at(")"):
                        break
                    continue
                if sep.kind == "op" and sep.text == ")":
                    break
                raise self.unexpected(sep, f"',' or ')' to close the call at column "
                                           f"{lparen.pos + 1}")
        close = self.advance()
        self.leave()
        return tuple(args), kwargs, close.end

    def pick_output(self, name_tok: Token, outputs: tuple[str, ...], multi: bool):
        """``.output`` after a call, if any: (output name or None, end offset)."""
        if not self.at("."):
            return None, None
        dot = self.advance()
        tok = self.tokens[self.i]
        if tok.kind != "name":
            raise self.error("expected an output name after '.'", dot.pos, dot.end,
                             f"; {name_tok.text}() has the output(s) {', '.join(outputs)}"
                             if outputs else "")
        self.i += 1
        wanted = tok.text.lower()
        for out in outputs:
            if out.lower() == wanted:
                return out, tok.end
        if tok.text.startswith("_"):
            raise self.error(f"attribute access {self.text[dot.pos:tok.end]!r} is not allowed",
                             dot.pos, tok.end, "; names starting with '_' are reserved")
        what = (f"; its outputs are {', '.join(outputs)}" if multi else
                "; it has a single output, use the call as it is")
        raise self.error(f"{name_tok.text}() has no output {tok.text!r}", tok.pos, tok.end,
                         _suggest(wanted, outputs) if multi and _suggest(wanted, outputs)
                         else what)

    def helper(self, name_tok: Token, args, kwargs, end: int) -> Node:
        name = name_tok.value
        lo, hi, usage = HELPERS[name]
        pos = name_tok.pos
        if kwargs:
            tok, _ = next(iter(kwargs.values()))
            raise self.error(f"{name}() takes no keyword arguments", tok.pos, tok.end,
                             f"; use {usage}")
        if len(args) < lo:
            raise self.error(f"{name}() needs {'at least ' if hi is None else ''}{lo} "
                             f"argument{'s' if lo > 1 else ''}, got {len(args)}", pos, end,
                             f"; use {usage}")
        if hi is not None and len(args) > hi:
            extra = args[hi]
            raise self.error(f"{name}() takes {hi} argument{'s' if hi > 1 else ''}, got "
                             f"{len(args)}", extra.pos, args[-1].end, f"; use {usage}")
        self.pick_output(name_tok, (), False)  # refuses any '.output' after a helper
        if name in ("and", "or"):
            return self.logic(name, args, pos, end)
        if name == "not":
            return _respan(self.unary("not", args[0], pos), pos, end)
        if name == "shift":
            x, n = args
            if not n.is_const or n.kind == _BOOL:
                raise self.error(f"shift() needs a constant whole number of bars, got "
                                 f"{self.part(n)}", n.pos, n.end, "; use shift(x, n)")
            value = float(n.value)
            if value < 0:
                raise self.error(f"shift by {self.part(n)} would look into the future", n.pos,
                                 n.end, "; n must be >= 0 (n bars ago)")
            if not value.is_integer() or value > MAX_SHIFT:
                raise self.error(f"shift by {self.part(n)} is not a whole number of bars from "
                                 f"0 to {MAX_SHIFT}", n.pos, n.end)
            return Call(name, (x,), {"n": int(value)}, pos, end, kind=x.kind, helper=name)
        if name in ("crossover", "crossunder"):
            return Call(name, args, {}, pos, end, kind=_BOOL, helper=name)
        if name in ("iff", "where"):
            kind = _BOOL if args[1].kind == _BOOL and args[2].kind == _BOOL else _NUMBER
            if all(a.is_const for a in args):
                return Const(_scalar(_iff(*(a.value for a in args))), pos, end)
            return Call("iff", args, {}, pos, end, kind=kind, helper="iff")
        # abs, min, max
        if all(a.is_const for a in args):
            return Const(_scalar(_HELPER_FUNCS[name](*(a.value for a in args))), pos, end)
        return Call(name, args, {}, pos, end, helper=name)

    def indicator(self, name_tok: Token, ind: Indicator, args, kwargs, end: int) -> Node:
        name = name_tok.value
        pos = name_tok.pos
        slots = list(ind.inputs) + [p.name for p in ind.params]
        usage = f"{name}({', '.join(slots)})"
        if len(args) > len(slots):
            extra = args[len(slots)]
            raise self.error(f"{name}() takes at most {len(slots)} argument"
                             f"{'s' if len(slots) != 1 else ''}, got {len(args)}",
                             extra.pos, args[-1].end, f"; use {usage}")
        bound: dict[str, Node] = dict(zip(slots, args))
        by_lower = {s.lower(): s for s in slots}
        for key, (tok, node) in kwargs.items():
            slot = by_lower.get(key)
            if slot is None:
                raise self.error(f"{name}() has no argument {tok.text!r}", tok.pos, tok.end,
                                 _suggest(key, by_lower) or f"; use {usage}")
            if slot in bound:
                raise self.error(f"argument {tok.text!r} of {name}() is given twice", tok.pos,
                                 node.end)
            bound[slot] = node
        missing = [s for s in ind.inputs if s not in bound]
        if missing:
            raise self.error(f"{name}() needs its input{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}", pos, end, f"; use {usage}")
        inputs = []
        for slot in ind.inputs:
            node = bound[slot]
            if node.is_const:
                raise self.error(f"input {slot!r} of {name}() must be a series, got the "
                                 f"constant {self.part(node)}", node.pos, node.end,
                                 f"; use {usage}")
            inputs.append(node)
        params = {}
        for p in ind.params:
            if p.name not in bound:
                continue
            node = bound[p.name]
            if not node.is_const:
                raise self.error(f"parameter {p.name!r} of {name}() must be a constant "
                                 f"number, got {self.part(node)}", node.pos, node.end,
                                 f"; it must be {p.describe_range()}")
            try:
                params[p.name] = p.validate(node.value, ind.name)
            except IndicatorError as exc:
                raise self.error(f"bad parameter {self.part(node)}", node.pos, node.end,
                                 f": {exc}") from None
        output, out_end = self.pick_output(name_tok, ind.outputs, len(ind.outputs) > 1)
        if output is None:
            if len(ind.outputs) > 1:
                raise self.error(f"{name}() has {len(ind.outputs)} outputs "
                                 f"({', '.join(ind.outputs)})", pos, end,
                                 f"; pick one, e.g. {self.text[pos:end]}.{ind.outputs[-1]}")
            output = ind.outputs[0]
        else:
            end = out_end
        return Call(name, tuple(inputs), params, pos, end, indicator=ind, output=output)


def _min(*xs):
    out = _num(xs[0])
    for x in xs[1:]:
        out = np.minimum(out, _num(x))
    return out


def _max(*xs):
    out = _num(xs[0])
    for x in xs[1:]:
        out = np.maximum(out, _num(x))
    return out


_HELPER_FUNCS: dict[str, Callable] = {"abs": lambda x: np.abs(_num(x)), "min": _min,
                                      "max": _max}


# --------------------------------------------------------------------------------------------
# The public API


def _walk(node: Node):
    yield node
    for child in node.children():
        yield from _walk(child)


@dataclass(frozen=True)
class Formula:
    """A parsed, validated formula: evaluate it with :meth:`evaluate` (or :func:`evaluate`).

    ``kind`` is ``"number"`` or ``"bool"`` (what the series holds); ``series`` the series
    names it reads; ``functions`` the functions it calls (lower-case names)."""

    text: str
    root: Node
    kind: str
    series: tuple[str, ...]
    functions: tuple[str, ...]

    def __str__(self) -> str:
        return self.text

    def evaluate(self, bars: pd.DataFrame) -> pd.Series:
        return evaluate(self, bars)

    def indicator(self, name: str = "FORMULA") -> Indicator:
        """The formula as an (unregistered) registry :class:`Indicator` with one output, so
        ``compute`` and the live form (``indicators.live.LiveIndicator``) take it like any
        other. Its inputs are the bar columns the formula reads."""
        inputs = tuple(dict.fromkeys(c for s in self.series for c in DERIVED_SERIES.get(s, (s,))))

        def function(*arrays):
            return evaluate(self, pd.DataFrame(dict(zip(inputs, arrays)))).to_numpy()

        return Indicator(name=name, group="Formula", title=self.text, inputs=inputs, params=(),
                         outputs=("value",), function=function)


def parse(text: str) -> Formula:
    """Parse and validate ``text``; a :class:`FormulaError` says what is wrong and where."""
    if not isinstance(text, str):
        raise TypeError(f"a formula is a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"the formula is too long ({len(text)} characters)", text,
                           MAX_LENGTH, len(text) - MAX_LENGTH,
                           f"; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise FormulaError("the formula is empty", text, 0, max(1, len(text)))
    root = _Parser(text).parse()
    nodes = list(_walk(root))
    series = tuple(dict.fromkeys(n.name for n in nodes if isinstance(n, SeriesRef)))
    functions = tuple(dict.fromkeys(n.name for n in nodes if isinstance(n, Call)))
    return Formula(text, root, root.kind, series, functions)


class _Context:
    def __init__(self, formula: Formula, bars: pd.DataFrame):
        self.formula = formula
        self.bars = bars
        self.n = len(bars)
        self.cache: dict[str, Any] = {}

    def error(self, reason: str, node: Node, detail: str = "") -> FormulaError:
        return FormulaError(reason, self.formula.text, node.pos, node.end - node.pos, detail)

    def column(self, name: str, node: Node) -> np.ndarray:
        bars = self.bars
        if name not in bars.columns:
            if name == "delta" and {"ask_volume", "bid_volume"} <= set(bars.columns):
                return self.column("ask_volume", node) - self.column("bid_volume", node)
            raise self.error(f"the bars have no column {name!r} for "
                             f"{self.formula.text[node.pos:node.end]!r}", node)
        col = bars[name]
        if isinstance(col, pd.DataFrame):
            raise self.error(f"the bars have several columns named {name!r}", node)
        if not (pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)):
            raise self.error(f"column {name!r} is not numeric (dtype {col.dtype})", node)
        return col.to_numpy(dtype="float64", na_value=np.nan)

    def full(self, value) -> np.ndarray:
        """A value as an array as long as the bars."""
        if isinstance(value, np.ndarray) and value.shape == (self.n,):
            return value
        arr = np.asarray(value)
        return np.full(self.n, arr.item(), dtype=arr.dtype if arr.dtype == np.bool_
                       else np.float64)


def _eval(node: Node, ctx: _Context):
    if node.is_const:
        return node.value
    if isinstance(node, SeriesRef):
        got = ctx.cache.get(node.key)
        if got is None:
            if node.name in DERIVED_SERIES:
                cols = [ctx.column(c, node) for c in DERIVED_SERIES[node.name]]
                got = sum(cols[1:], cols[0]) / len(cols)
            else:
                got = ctx.column(node.name, node)
            ctx.cache[node.key] = got
        return got
    if isinstance(node, Unary):
        v = _eval(node.operand, ctx)
        return ~_truth(v) if node.op == "not" else -_num(v)
    if isinstance(node, Binary):
        return _arith(node.op, _eval(node.left, ctx), _eval(node.right, ctx))
    if isinstance(node, Compare):
        return _compare(node.ops, [_eval(x, ctx) for x in node.operands])
    if isinstance(node, Logic):
        return _logic(node.op, [_eval(x, ctx) for x in node.operands])
    if isinstance(node, Call):
        got = ctx.cache.get(node.key)
        if got is None:
            got = _eval_call(node, ctx)
            ctx.cache[node.key] = got
        return got
    raise AssertionError(f"unknown node {node!r}")


def _eval_call(node: Call, ctx: _Context):
    args = [_eval(a, ctx) for a in node.args]
    if node.indicator is not None:
        ind = node.indicator
        if ind.inputs:  # the (computed) inputs under names of our own, mapped with inputs=
            data = {f"input{i}": _num(ctx.full(a)) for i, a in enumerate(args)}
            mapping = {name: f"input{i}" for i, name in enumerate(ind.inputs)}
        else:
            data, mapping = ctx.bars, {}
        try:
            frame = REGISTRY.compute(ind, data, inputs=mapping, **node.params)
        except Exception as exc:  # noqa: BLE001 -- reported to the user, with its position
            raise ctx.error(f"{ctx.formula.text[node.pos:node.end]!r} could not be computed",
                            node, f": {exc}") from exc
        col = ind.columns[ind.outputs.index(node.output)]
        return frame[col].to_numpy(dtype="float64", na_value=np.nan)
    name = node.helper
    if name == "shift":
        return _shifted(ctx.full(args[0]), node.params["n"])
    if name in ("crossover", "crossunder"):
        a, b = _num(ctx.full(args[0])), _num(ctx.full(args[1]))
        pa, pb = _shifted(a, 1), _shifted(b, 1)
        if name == "crossover":
            return (a > b) & (pa <= pb)
        return (a < b) & (pa >= pb)
    if name == "iff":
        return _iff(*args)
    return _HELPER_FUNCS[name](*args)


def evaluate(text_or_formula: str | Formula, bars: pd.DataFrame) -> pd.Series:
    """The formula computed over ``bars``: a Series on the bars' index, float64 (bool for a
    comparison or logic), named after the formula. Bad text, a column the bars lack or an
    indicator that cannot be computed: :class:`FormulaError`."""
    formula = (text_or_formula if isinstance(text_or_formula, Formula)
               else parse(text_or_formula))
    if not isinstance(bars, pd.DataFrame):
        bars = pd.DataFrame(bars)
    ctx = _Context(formula, bars)
    with np.errstate(all="ignore"):
        value = _eval(formula.root, ctx)
        arr = ctx.full(value)
    if formula.kind == _BOOL:
        arr = arr.astype(bool, copy=False)
    elif arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    elif not arr.flags.owndata or any(arr is v for v in ctx.cache.values()):
        arr = arr.copy()
    return pd.Series(arr, index=bars.index, name=formula.text)
