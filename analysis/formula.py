"""lme4-style model formulas: ``y ~ a + b + a:b + (1 + x | g) + (0 + z || h)``.

Supported
---------
- response: a column, an arithmetic expression of columns (``log(rt_ms)``), or
  ``cbind(successes, failures)`` with expressions (``cbind(k, n - k)``);
- fixed part: ``1``/``0``/``-1``, column names, interactions ``a:b`` and ``a*b``;
- random part: ``(1|g)``, ``(x|g)`` / ``(1 + x|g)`` (correlated), ``(0 + x|g)``,
  ``(1 + x||g)`` (uncorrelated: split into one term per column), grouping by an
  interaction ``(1|g:h)``. Slopes must be numeric columns.

Not supported: nested shorthand ``(1|g/h)``, functions inside the fixed part, offsets,
factor-valued random slopes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FormulaError", "RandomTerm", "Formula", "parse_formula"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


class FormulaError(ValueError):
    """A formula that cannot be parsed or is not supported."""


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term: covariates varying over the levels of ``group``."""

    intercept: bool
    slopes: tuple[str, ...]
    group: str
    correlated: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the term's columns (``(Intercept)`` first when present)."""
        return (("(Intercept)",) if self.intercept else ()) + self.slopes

    @property
    def group_factors(self) -> tuple[str, ...]:
        """Columns whose interaction forms the grouping factor."""
        return tuple(g.strip() for g in self.group.split(":"))


@dataclass(frozen=True)
class Formula:
    """A parsed formula."""

    text: str
    response: str
    binomial_cbind: tuple[str, str] | None
    intercept: bool
    fixed_terms: tuple[tuple[str, ...], ...]
    random: tuple[RandomTerm, ...]

    @property
    def variables(self) -> set[str]:
        """Column names used by the fixed and random parts (not the response)."""
        out: set[str] = {v for t in self.fixed_terms for v in t}
        for r in self.random:
            out.update(r.slopes)
            out.update(r.group_factors)
        return out


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses, keeping signs for '+' splits."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError("unbalanced parentheses")
        if depth == 0 and ch in sep:
            parts.append("".join(cur))
            cur = [ch]
            continue
        cur.append(ch)
    if depth != 0:
        raise FormulaError("unbalanced parentheses")
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def _check_name(name: str, where: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise FormulaError(f"'{name}' in {where} is not a column name (expressions are not supported there)")
    return name


def _parse_random(inner: str) -> list[RandomTerm]:
    double = "||" in inner
    lhs, _, group = inner.partition("||" if double else "|")
    if not group.strip():
        raise FormulaError(f"random term '({inner})' has no grouping factor")
    if "/" in group:
        raise FormulaError("nested grouping '(1|g/h)' is not supported; write (1|g) + (1|g:h)")
    for g in group.split(":"):
        _check_name(g, "a grouping factor")
    intercept = True
    slopes: list[str] = []
    for tok in _split_top(lhs.replace("-", "+-"), "+"):
        tok = tok.lstrip("+").strip()
        if tok in {"1", "+1"}:
            intercept = True
        elif tok in {"0", "-1"}:
            intercept = False
        elif tok.startswith("-"):
            raise FormulaError(f"cannot remove '{tok[1:]}' in a random term")
        elif ":" in tok or "*" in tok:
            raise FormulaError(f"interactions inside random terms ('{tok}') are not supported")
        else:
            slopes.append(_check_name(tok, "a random term"))
    if not intercept and not slopes:
        raise FormulaError(f"random term '({inner})' has no columns")
    group = ":".join(g.strip() for g in group.split(":"))
    if double:
        terms = [RandomTerm(True, (), group, True)] if intercept else []
        terms += [RandomTerm(False, (s,), group, True) for s in slopes]
        return terms
    return [RandomTerm(intercept, tuple(slopes), group, True)]


def _expand_fixed(tok: str) -> list[tuple[str, ...]]:
    if "*" in tok:
        factors = [_check_name(f, "the fixed part") for f in tok.split("*")]
        out: list[tuple[str, ...]] = []
        n = len(factors)
        for mask in range(1, 2**n):
            out.append(tuple(factors[i] for i in range(n) if mask >> i & 1))
        return sorted(out, key=len)
    return [tuple(_check_name(f, "the fixed part") for f in tok.split(":"))]


def parse_formula(text: str) -> Formula:
    """Parse an lme4-style formula.

    Parameters
    ----------
    text : str
        For example ``"correct ~ condition + (1|participant_id) + (1|family)"``.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        If the formula is malformed or uses an unsupported feature (named in the message).
    """
    if text.count("~") != 1:
        raise FormulaError(f"formula must contain exactly one '~': {text!r}")
    lhs, rhs = (s.strip() for s in text.split("~"))
    if not lhs:
        raise FormulaError("formula has no response (left of '~')")
    cbind = None
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs)
    if m:
        args = _split_top(m.group(1), ",")
        args = [a.lstrip(",").strip() for a in args]
        if len(args) != 2:
            raise FormulaError("cbind() needs two arguments: successes and failures")
        cbind = (args[0], args[1])
    intercept = True
    fixed: list[tuple[str, ...]] = []
    random: list[RandomTerm] = []
    for tok in _split_top(rhs.replace("||", "\0"), "+-"):
        sign = "-" if tok.startswith("-") else "+"
        tok = tok.lstrip("+-").strip().replace("\0", "||")
        if not tok:
            continue
        if tok.startswith("(") and tok.endswith(")") and "|" in tok:
            if sign == "-":
                raise FormulaError("cannot subtract a random term")
            random.extend(_parse_random(tok[1:-1]))
        elif tok in {"0", "1"}:
            intercept = tok == "1" and sign == "+"
        elif sign == "-":
            raise FormulaError(f"removing terms ('-{tok}') is only supported for the intercept")
        else:
            for t in _expand_fixed(tok):
                if t not in fixed:
                    fixed.append(t)
    fixed.sort(key=len)  # main effects before interactions, as R orders them
    return Formula(text, lhs, cbind, intercept, tuple(fixed), tuple(random))
