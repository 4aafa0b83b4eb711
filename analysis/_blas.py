"""Temporarily limit BLAS threads while fitting.

Mixed-model fits do thousands of small dense factorisations (a few hundred rows); for
those, OpenBLAS's thread start-up costs more than it saves, and on a busy machine it costs
a great deal (a 380 x 380 Cholesky: 0.5 ms on one thread, 4 ms on two contended ones).
``threadpoolctl`` sets the limit and restores the previous one on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

__all__ = ["blas_threads"]


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit BLAS to ``n`` threads inside the ``with`` block."""
    with threadpool_limits(limits=n, user_api="blas"):
        yield
