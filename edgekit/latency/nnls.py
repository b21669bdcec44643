"""Non-negative least squares for the kernel regressors: ``scipy.optimize.nnls`` when SciPy is
installed, else the Lawson-Hanson active-set method in numpy (Lawson & Hanson, "Solving Least
Squares Problems", 1974, ch. 23), which is what SciPy implements too.

Latency ~= sum over kernel types t of (a_t * MACs_t + b_t * bytes_t + c_t * count_t) + constant,
every coefficient >= 0 (a kernel never saves time). The rows are divided by the measured latency,
so the fit minimises the squared *relative* error, the figure the predictions are judged by
(RMSPE, share within +-10%); the columns are scaled to unit norm so that MACs (1e8) and counts
(1e2) weigh alike in the solver.
"""

from __future__ import annotations

import numpy as np


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """x >= 0 minimising ||a x - b||_2."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    try:
        from scipy.optimize import nnls as scipy_nnls
    except ImportError:
        return numpy_nnls(a, b, max_iter)
    return scipy_nnls(a, b, maxiter=max_iter or 50 * a.shape[1])[0]


def numpy_nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None, tol: float = 1e-10) -> np.ndarray:
    """Lawson-Hanson NNLS in numpy (the fallback without SciPy)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    for _ in range(max_iter or 3 * n + 30):
        if passive.all() or w[~passive].max(initial=-np.inf) <= tol:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            bad = passive & (z <= tol)
            alpha = np.min(x[bad] / (x[bad] - z[bad]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        w = a.T @ (b - a @ x)
    return x


def fit_relative(features: np.ndarray, measured: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Non-negative coefficients of ``features @ coef ~= measured``, fitted on relative errors.

    ``ridge`` adds a small penalty on the (column-scaled) coefficients so that columns the sample
    cannot tell apart share the load instead of one taking an arbitrary value.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(measured, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"features {x.shape} and measurements {y.shape} do not match")
    if (y <= 0).any():
        raise ValueError("measured latencies must be positive")
    scale = np.linalg.norm(x / y[:, None], axis=0)
    scale[scale == 0] = 1.0
    a = (x / y[:, None]) / scale
    b = np.ones_like(y)
    if ridge > 0:
        a = np.vstack([a, np.sqrt(ridge) * np.eye(a.shape[1])])
        b = np.concatenate([b, np.zeros(a.shape[1])])
    return nnls(a, b) / scale
