"""Temporarily limit BLAS threads while fitting.

Mixed-model fits do thousands of small dense factorisations (a few hundred rows); for
those, OpenBLAS's thread start-up costs more than it saves, and on a busy machine it costs
a great deal (a 380 x 380 Cholesky: 0.5 ms on one thread, 4 ms on two contended ones).
``threadpoolctl`` is used when installed; otherwise the OpenBLAS libraries already loaded
by numpy and scipy are found in ``/proc/self/maps`` and set through their C API. Either
way the previous setting is restored on exit; on other platforms this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["blas_threads"]

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
            "openblas_get_num_threads")


def _openblas_handles() -> list[tuple[object, object]]:
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line and line.rstrip().endswith(".so")}
    except OSError:
        return []
    out = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            getter.restype = ctypes.c_int
            out.append((setter, getter))
    return out


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit BLAS to ``n`` threads inside the ``with`` block."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
        return
    handles = _openblas_handles()
    before = []
    for setter, getter in handles:
        try:
            before.append(int(getter()))
            setter(ctypes.c_int(n))
        except Exception:  # a foreign ABI: leave it alone
            before.append(None)
    try:
        yield
    finally:
        for (setter, _), b in zip(handles, before):
            if b is not None:
                setter(ctypes.c_int(b))
