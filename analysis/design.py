"""Model matrices: treatment-coded fixed effects and the random-effects structure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .chol import BlockCholesky
from .formula import Formula, RandomTerm
from .load import DataError

__all__ = ["FixedDesign", "ReBlock", "ReStructure", "build_response", "is_categorical"]


def is_categorical(s: pd.Series) -> bool:
    """Whether a column is treated as a factor (strings, categories, booleans)."""
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _fmt_level(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass
class FixedDesign:
    """Treatment-coded fixed-effects design, reusable on new data (``matrix``)."""

    formula: Formula
    levels: dict[str, list[str]]  # factor -> levels, reference first
    columns: list[str] = field(default_factory=list)
    _spec: list[list[tuple[str, str | None]]] = field(default_factory=list)

    @classmethod
    def from_data(
        cls, formula: Formula, data: pd.DataFrame, reference: Mapping[str, object] | None = None
    ) -> FixedDesign:
        """Learn factor levels and column layout from ``data``."""
        reference = dict(reference or {})
        levels: dict[str, list[str]] = {}
        fixed_vars = {v for t in formula.fixed_terms for v in t}
        for name in reference:
            if name not in fixed_vars:
                raise DataError(f"reference level given for '{name}', which is not a fixed-effect factor")
        for v in sorted(fixed_vars):
            s = data[v]
            if is_categorical(s):
                if isinstance(s.dtype, pd.CategoricalDtype):
                    lv = [_fmt_level(x) for x in s.cat.categories if (s == x).any()]
                else:
                    lv = sorted({_fmt_level(x) for x in s.dropna()})
                if v in reference:
                    ref = _fmt_level(reference[v])
                    if ref not in lv:
                        raise DataError(f"reference level '{ref}' of '{v}' does not occur in the data (levels: {', '.join(lv)})")
                    lv.remove(ref)
                    lv.insert(0, ref)
                levels[v] = lv
            elif v in reference:
                # numeric column used as a factor because a reference level was asked for
                lv = sorted({_fmt_level(x) for x in s.dropna()})
                ref = _fmt_level(reference[v])
                if ref not in lv:
                    raise DataError(f"reference level '{ref}' of '{v}' does not occur in the data")
                lv.remove(ref)
                levels[v] = [ref] + lv
        self = cls(formula, levels)
        self._layout()
        return self

    def _layout(self) -> None:
        present = {frozenset(t) for t in self.formula.fixed_terms}
        if self.formula.intercept:
            present.add(frozenset())
        cols: list[str] = ["(Intercept)"] if self.formula.intercept else []
        spec: list[list[tuple[str, str | None]]] = [[]] if self.formula.intercept else []
        for term in self.formula.fixed_terms:
            parts: list[list[tuple[str, str | None]]] = [[]]
            for v in term:
                if v in self.levels:
                    margin = frozenset(term) - {v}
                    lv = self.levels[v][1:] if margin in present else self.levels[v]
                    parts = [p + [(v, lev)] for lev in lv for p in parts]
                else:
                    parts = [p + [(v, None)] for p in parts]
            for p in parts:
                spec.append(p)
                cols.append(":".join(v if lev is None else f"{v}{lev}" for v, lev in p))
        self.columns, self._spec = cols, spec

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects model matrix for ``data`` (same columns as the fit)."""
        n = len(data)
        X = np.ones((n, len(self.columns)))
        cache: dict[str, np.ndarray] = {}
        for j, p in enumerate(self._spec):
            for v, lev in p:
                if lev is None:
                    x = pd.to_numeric(data[v], errors="coerce").to_numpy(dtype=float)
                    if np.isnan(x).any():
                        raise DataError(f"column '{v}' has missing or non-numeric values")
                    X[:, j] *= x
                else:
                    if v not in cache:
                        vals = data[v].map(lambda x: x if pd.isna(x) else _fmt_level(x))
                        unknown = ~vals.isin(self.levels[v])
                        if unknown.any():
                            bad = sorted({str(x) for x in vals[unknown]})[:5]
                            raise DataError(f"column '{v}' has levels not seen in the fit: {', '.join(bad)}")
                        cache[v] = vals.to_numpy(dtype=object)
                    X[:, j] *= cache[v] == lev
        return X


def build_response(formula: Formula, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Response and prior weights: ``cbind(k, f)`` gives ``y = k/(k+f)``, weights ``k+f``."""

    def ev(expr: str) -> np.ndarray:
        try:
            out = data.eval(expr, engine="python") if expr not in data.columns else data[expr]
        except Exception as exc:
            raise DataError(f"cannot evaluate '{expr}' in the response: {exc}") from exc
        arr = pd.to_numeric(pd.Series(np.asarray(out)), errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"response '{expr}' has missing, non-numeric or infinite values")
        return arr

    if formula.binomial_cbind is not None:
        k, f = (ev(e) for e in formula.binomial_cbind)
        if np.any(k < 0) or np.any(f < 0):
            raise DataError("cbind() counts must be non-negative")
        m = k + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(m > 0, k / np.where(m > 0, m, 1), 0.0)
        return y, m
    y = ev(formula.response)
    return y, np.ones_like(y)


@dataclass
class ReBlock:
    """One random-effects term: ``p`` columns for each of ``nlev`` levels."""

    term: RandomTerm
    levels: list[str]
    codes: np.ndarray  # (n,) level index per row
    Z: np.ndarray  # (n, p) covariate values
    offset: int  # first column of this block in u

    @property
    def p(self) -> int:
        return self.Z.shape[1]

    @property
    def nlev(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.p * self.nlev

    @property
    def ntheta(self) -> int:
        return self.p * (self.p + 1) // 2 if self.term.correlated else self.p


class ReStructure:
    """All random-effects blocks, with products against weights computed by bincount.

    Random effects are ordered block by block, level-major within a block (the columns
    of level ``j`` are ``offset + j*p + (0..p-1)``), as in lme4.
    """

    def __init__(self, terms: tuple[RandomTerm, ...], data: pd.DataFrame):
        self.blocks: list[ReBlock] = []
        off = 0
        built = [self._block(t, data) for t in terms]
        # Largest term first (as lme4 orders them): it is eliminated cheaply (chol.py).
        built.sort(key=lambda b: -b.q)
        for blk in built:
            blk.offset = off
            off += blk.q
            self.blocks.append(blk)
        self.q = off
        self.ntheta = sum(b.ntheta for b in self.blocks)
        self.n = len(data)

    @staticmethod
    def _block(t: RandomTerm, data: pd.DataFrame) -> ReBlock:
        key = data[list(t.group_factors)].astype(str).agg(":".join, axis=1) if len(
            t.group_factors) > 1 else data[t.group_factors[0]].map(_fmt_level)
        if key.isna().any():
            raise DataError(f"grouping factor '{t.group}' has missing values")
        codes, uniq = pd.factorize(key, sort=True)
        cols = [np.ones(len(data))] if t.intercept else []
        for s in t.slopes:
            if is_categorical(data[s]):
                raise DataError(f"random slope '{s}' is a factor; only numeric random slopes are supported")
            cols.append(pd.to_numeric(data[s]).to_numpy(dtype=float))
        Z = np.column_stack(cols)
        return ReBlock(t, [str(u) for u in uniq], codes.astype(np.intp), Z, 0)

    def cholesky(self, A: np.ndarray) -> BlockCholesky:
        """Cholesky factor of ``A`` (q x q) eliminating the first (largest) block first."""
        return BlockCholesky(A, self.blocks[0].nlev, self.blocks[0].p)

    # --- theta and Lambda -------------------------------------------------------------
    def theta_lower(self) -> np.ndarray:
        """Lower bounds: 0 for diagonal elements, -inf for off-diagonal ones."""
        out = []
        for b in self.blocks:
            if b.term.correlated:
                for j in range(b.p):
                    for i in range(j, b.p):
                        out.append(0.0 if i == j else -np.inf)
            else:
                out.extend([0.0] * b.p)
        return np.array(out)

    def theta_init(self) -> np.ndarray:
        """Start values: identity relative covariance factors (as lme4)."""
        out = []
        for b in self.blocks:
            if b.term.correlated:
                out.extend(1.0 if i == j else 0.0 for j in range(b.p) for i in range(j, b.p))
            else:
                out.extend([1.0] * b.p)
        return np.array(out)

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """The lower-triangular relative covariance factor ``T`` of each block."""
        out, k = [], 0
        for b in self.blocks:
            T = np.zeros((b.p, b.p))
            if b.term.correlated:
                for j in range(b.p):
                    for i in range(j, b.p):
                        T[i, j] = theta[k]
                        k += 1
            else:
                T[np.diag_indices(b.p)] = theta[k : k + b.p]
                k += b.p
            out.append(T)
        return out

    @property
    def diagonal(self) -> bool:
        """True when every block has one column (Lambda is diagonal)."""
        return all(b.p == 1 for b in self.blocks)

    def lambda_matrix(self, theta: np.ndarray) -> np.ndarray:
        """Lambda as a vector (diagonal case) or a dense ``q x q`` matrix."""
        Ts = self.factors(theta)
        if self.diagonal:
            return np.concatenate([np.full(b.nlev, T[0, 0]) for b, T in zip(self.blocks, Ts)])
        L = np.zeros((self.q, self.q))
        for b, T in zip(self.blocks, Ts):
            for j in range(b.nlev):
                s = b.offset + j * b.p
                L[s : s + b.p, s : s + b.p] = T
        return L

    # --- products with Z ----------------------------------------------------------------
    def z_times(self, b_vec: np.ndarray) -> np.ndarray:
        """``Z @ b`` for a vector of random effects on the original scale."""
        out = np.zeros(self.n)
        for blk in self.blocks:
            B = b_vec[blk.offset : blk.offset + blk.q].reshape(blk.nlev, blk.p)
            out += np.einsum("ij,ij->i", blk.Z, B[blk.codes])
        return out

    def zt_times(self, v: np.ndarray) -> np.ndarray:
        """``Z.T @ v`` for ``v`` of shape (n,) or (n, k)."""
        v2 = v[:, None] if v.ndim == 1 else v
        out = np.zeros((self.q, v2.shape[1]))
        for blk in self.blocks:
            for a in range(blk.p):
                for c in range(v2.shape[1]):
                    out[blk.offset + a : blk.offset + blk.q : blk.p, c] = np.bincount(
                        blk.codes, weights=blk.Z[:, a] * v2[:, c], minlength=blk.nlev)
        return out[:, 0] if v.ndim == 1 else out

    def ztwz(self, w: np.ndarray) -> np.ndarray:
        """Dense ``Z.T @ diag(w) @ Z``."""
        M = np.zeros((self.q, self.q))
        for k, bk in enumerate(self.blocks):
            for a in range(bk.p):
                for c in range(a, bk.p):
                    vals = np.bincount(bk.codes, weights=w * bk.Z[:, a] * bk.Z[:, c], minlength=bk.nlev)
                    ia = bk.offset + np.arange(bk.nlev) * bk.p
                    M[ia + a, ia + c] = vals
                    M[ia + c, ia + a] = vals
            for bl in self.blocks[k + 1 :]:
                idx = bk.codes * bl.nlev + bl.codes
                for a in range(bk.p):
                    for c in range(bl.p):
                        vals = np.bincount(idx, weights=w * bk.Z[:, a] * bl.Z[:, c],
                                           minlength=bk.nlev * bl.nlev).reshape(bk.nlev, bl.nlev)
                        rs = slice(bk.offset + a, bk.offset + bk.q, bk.p)
                        cs = slice(bl.offset + c, bl.offset + bl.q, bl.p)
                        M[rs, cs] = vals
                        M[cs, rs] = vals.T
        return M
