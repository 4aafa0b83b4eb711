"""Cholesky factor of ``A = Lambda'Z'WZ Lambda + I`` exploiting its first block.

The rows of ``Z`` for the first random-effects term each touch one level only, so the
leading ``q1 x q1`` block of ``A`` is block diagonal with ``p1 x p1`` blocks. Eliminating
it first leaves a dense Schur complement of size ``q - q1``: for crossed participants and
items that halves the dense dimension and cuts the work about eightfold.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = ["BlockCholesky"]


class BlockCholesky:
    """``A = L L'`` with ``L = [[L11, 0], [L21, L22]]``, ``L11`` block diagonal.

    Parameters
    ----------
    A : ndarray (q, q)
        Symmetric positive definite; its leading ``nlev1 * p1`` block is block diagonal.
    nlev1, p1 : int
        Number of levels and columns of the first random-effects term.
    """

    def __init__(self, A: np.ndarray, nlev1: int, p1: int):
        q1 = nlev1 * p1
        self.q1, self.p1, self.nlev1, self.q = q1, p1, nlev1, A.shape[0]
        if p1 == 1:
            d = np.diag(A)[:q1].copy()
            if np.any(d <= 0):
                raise linalg.LinAlgError("matrix is not positive definite")
            self.l11 = np.sqrt(d)  # diagonal of L11
            self.L21 = A[q1:, :q1] / self.l11[None, :]
        else:
            idx = np.arange(q1).reshape(nlev1, p1)
            blocks = A[idx[:, :, None], idx[:, None, :]]  # (nlev1, p1, p1)
            self.l11 = np.linalg.cholesky(blocks)
            # L21 = A21 L11^{-T}: solve per level
            A21 = A[q1:, :q1].reshape(self.q - q1, nlev1, p1).transpose(1, 2, 0)  # (nlev, p1, q2)
            X = np.linalg.solve(self.l11, A21)  # L11^{-1} A12, (nlev, p1, q2)
            self.L21 = X.transpose(2, 0, 1).reshape(self.q - q1, q1)
        if self.q > q1:
            S = A[q1:, q1:] - self.L21 @ self.L21.T
            self.L22 = linalg.cholesky(S, lower=True, check_finite=False)
        else:
            self.L22 = np.zeros((0, 0))

    # -- L11 helpers ---------------------------------------------------------------------
    def _l11_solve(self, b: np.ndarray, trans: bool) -> np.ndarray:
        if self.p1 == 1:
            return b / (self.l11 if b.ndim == 1 else self.l11[:, None])
        shape = b.shape
        B = b.reshape(self.nlev1, self.p1, -1)
        Lb = np.swapaxes(self.l11, 1, 2) if trans else self.l11
        return np.linalg.solve(Lb, B).reshape(shape)

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """``L^{-1} b`` (``b`` of shape (q,) or (q, k))."""
        x1 = self._l11_solve(b[: self.q1], trans=False)
        if self.q == self.q1:
            return x1
        x2 = linalg.solve_triangular(self.L22, b[self.q1 :] - self.L21 @ x1, lower=True, check_finite=False)
        return np.concatenate([x1, x2])

    def solve_Lt(self, b: np.ndarray) -> np.ndarray:
        """``L^{-T} b``."""
        if self.q == self.q1:
            return self._l11_solve(b, trans=True)
        y2 = linalg.solve_triangular(self.L22, b[self.q1 :], lower=True, trans="T", check_finite=False)
        y1 = self._l11_solve(b[: self.q1] - self.L21.T @ y2, trans=True)
        return np.concatenate([y1, y2])

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A^{-1} b``."""
        return self.solve_Lt(self.solve_L(b))

    @property
    def logdet(self) -> float:
        """``log det A`` (lme4's ``ldL2``)."""
        if self.p1 == 1:
            d1 = np.log(self.l11).sum()
        else:
            d1 = np.log(np.diagonal(self.l11, axis1=1, axis2=2)).sum()
        return float(2.0 * (d1 + np.log(np.diag(self.L22)).sum()))
