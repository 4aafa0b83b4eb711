"""Bounded minimisation of smooth, cheap deviance functions (lme4's role for bobyqa)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["OptResult", "minimize_bounded", "numeric_hessian", "numeric_grad_hess", "newton_fd"]


@dataclass
class OptResult:
    """Where the optimiser stopped and whether it believes it converged."""

    x: np.ndarray
    fun: float
    converged: bool
    nfev: int
    message: str


def minimize_bounded(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray | None = None,
    xtol: float = 1e-6,
    maxfev: int | None = None,
    polish: bool = True,
    ftol: float = 1e-14,
) -> OptResult:
    """Minimise ``fun`` subject to ``lower <= x <= upper``.

    L-BFGS-B with central-difference gradients does the bulk of the work; a bounded
    Nelder-Mead restart from its answer polishes it and guards against a premature stop
    (the same check lme4 users do with ``allFit``). Converged means the restart improves
    the objective by less than ``1e-7`` relative; otherwise the two alternate (4 rounds).
    """
    x0 = np.asarray(x0, dtype=float)
    upper = np.full_like(x0, np.inf) if upper is None else upper
    bounds = list(zip(np.where(np.isfinite(lower), lower, None), np.where(np.isfinite(upper), upper, None)))
    nfev = 0

    def f(x: np.ndarray) -> float:
        nonlocal nfev
        nfev += 1
        val = fun(x)
        return val if np.isfinite(val) else 1e300

    def grad(x: np.ndarray) -> np.ndarray:
        g = np.empty_like(x)
        for i in range(len(x)):
            h = 1e-5 * max(1.0, abs(x[i]))
            lo_room = x[i] - lower[i]
            if lo_room < h:  # one-sided at a lower bound
                g[i] = (f(_with(x, i, x[i] + h)) - f(x)) / h
            else:
                g[i] = (f(_with(x, i, x[i] + h)) - f(_with(x, i, x[i] - h))) / (2 * h)
        return g

    x = np.clip(x0, lower, upper)
    # gradient tolerance relative to the deviance's size (its rounding noise grows with it)
    gtol = 1e-9 * max(1.0, abs(f(x)))
    messages = []
    for _ in range(4):
        r1 = optimize.minimize(f, x, jac=grad, method="L-BFGS-B", bounds=bounds,
                               options={"ftol": ftol, "gtol": gtol, "maxiter": 2000})
        if not polish:
            return OptResult(np.asarray(r1.x, dtype=float), float(r1.fun), bool(r1.success), nfev, str(r1.message))
        step = np.maximum(np.abs(r1.x) * 0.02, 0.01)
        simplex = [r1.x.copy()]
        for i in range(len(x)):
            v = r1.x.copy()
            v[i] = v[i] + step[i] if v[i] + step[i] <= upper[i] else v[i] - step[i]
            simplex.append(np.clip(v, lower, upper))
        # fatol relative to the deviance: below ~1e-13 relative it is rounding noise
        r2 = optimize.minimize(f, r1.x, method="Nelder-Mead", bounds=bounds,
                               options={"xatol": xtol, "fatol": 1e-11 * max(1.0, abs(r1.fun)),
                                        "maxfev": maxfev or 400 * (len(x) + 1),
                                        "initial_simplex": np.array(simplex)})
        best = r2 if r2.fun <= r1.fun else r1
        # Converged when a Nelder-Mead restart cannot improve on L-BFGS-B's answer.
        if r1.fun - r2.fun < 1e-7 * max(1.0, abs(best.fun)):
            return OptResult(np.asarray(best.x, dtype=float), float(best.fun), True, nfev, "")
        messages.append(f"L-BFGS-B: {r1.message}; Nelder-Mead: {r2.message}")
        x = np.asarray(best.x, dtype=float)
    return OptResult(x, float(best.fun), False, nfev,
                     "optimisers kept improving on each other (" + messages[-1] + ")")


def _with(x: np.ndarray, i: int, v: float) -> np.ndarray:
    y = x.copy()
    y[i] = v
    return y


def numeric_hessian(fun: Callable[[np.ndarray], float], x: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
    """Central-difference Hessian of ``fun`` at ``x`` (4 evaluations per off-diagonal pair)."""
    return numeric_grad_hess(fun, x, steps)[2]


def numeric_grad_hess(
    fun: Callable[[np.ndarray], float], x: np.ndarray, steps: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Value, central-difference gradient and Hessian of ``fun`` at ``x``."""
    x = np.asarray(x, dtype=float)
    d = len(x)
    h = steps if steps is not None else 1e-4 * np.maximum(1.0, np.abs(x))
    f0 = fun(x)
    H = np.empty((d, d))
    fp = np.empty(d)
    fm = np.empty(d)
    for i in range(d):
        fp[i] = fun(_with(x, i, x[i] + h[i]))
        fm[i] = fun(_with(x, i, x[i] - h[i]))
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for i in range(d):
        for j in range(i + 1, d):
            e = np.zeros(d)
            e[i], e_j = h[i], np.zeros(d)
            e_j[j] = h[j]
            fpp = fun(x + e + e_j)
            fpm = fun(x + e - e_j)
            fmp = fun(x - e + e_j)
            fmm = fun(x - e - e_j)
            H[i, j] = H[j, i] = (fpp - fpm - fmp + fmm) / (4 * h[i] * h[j])
    g = (fp - fm) / (2 * h)
    return f0, g, H


def newton_fd(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    maxiter: int = 20,
    xtol: float = 1e-7,
    accept: float = 1e-4,
) -> tuple[OptResult, np.ndarray] | None:
    """Newton's method with finite-difference derivatives, for a start near the optimum.

    Returns the result and the Hessian at the final point, or ``None`` when Newton is not
    applicable (a Hessian that is not positive definite, a step that leaves the bounds or
    fails to decrease ``fun``); the caller then falls back to :func:`minimize_bounded`.
    """
    x = np.asarray(x0, dtype=float).copy()
    nfev = 0
    for _ in range(maxiter):
        f0, g, H = numeric_grad_hess(fun, x)
        nfev += 1 + 2 * len(x) ** 2
        try:
            c = np.linalg.cholesky(0.5 * (H + H.T))
        except np.linalg.LinAlgError:
            return None
        step = -np.linalg.solve(c.T, np.linalg.solve(c, g))
        if np.max(np.abs(step)) < xtol:
            return OptResult(x, f0, True, nfev, ""), H
        if np.max(np.abs(step)) < accept and np.all(x + step >= lower):
            # Quadratic convergence: after this step the error is O(|step|^2). The Hessian
            # at x differs from the one at x + step by O(|step|) relative.
            fn = fun(x + step)
            if fn <= f0 + 1e-10 * abs(f0):
                return OptResult(x + step, fn, True, nfev + 1, ""), H
        t = 1.0
        while t > 1e-4:
            xn = x + t * step
            if np.all(xn >= lower):
                fn = fun(xn)
                nfev += 1
                if fn <= f0 + 1e-10 * abs(f0):
                    break
            t /= 2
        else:
            return None
        x = xn
    return None
