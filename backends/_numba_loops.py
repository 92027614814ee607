"""Nopython tangent and twin loops of the numba backend (``prange`` over ensemble members).

The map's kernels are passed as arguments, so each loop is compiled once per map type (kernels and
parameter types) and reused for every parameter value. Tangent vectors are stored as rows of
``V`` (k, n) so that each vector is contiguous; ``V ← V Jᵀ`` is ``Q ← J Q``.
"""

import math

import numpy as np
from numba import njit, prange

_SMALL = 512  # n*n*k up to which the tangent product is an explicit loop (no BLAS call overhead)
_FLUSH_HIGH, _FLUSH_LOW = 1e150, 1e-150  # log(prod R_ii) is taken only when the product leaves this


@njit(cache=True, nogil=True)
def _tangent_product(J, V, out):
    """``out = V Jᵀ`` (each row of V is a tangent vector, mapped by J)."""
    k, n = V.shape
    if n * n * k <= _SMALL:
        for i in range(k):
            for a in range(n):
                s = 0.0
                for b in range(n):
                    s += J[a, b] * V[i, b]
                out[i, a] = s
    else:
        out[:, :] = np.dot(V, J.T)


@njit(cache=True, nogil=True)
def _gram_schmidt(V, r):
    """Orthonormalise the rows of V in place (modified Gram–Schmidt); ``r`` gets diag(R) > 0.

    A second pass re-orthogonalises a row whenever its norm dropped below half during the first
    (Daniel–Gragg–Kaufman–Stewart 1976), so orthogonality holds to rounding even for ill-conditioned
    bases (re-orthonormalising only every few steps).
    """
    k, n = V.shape
    for i in range(k):
        before = 0.0
        for a in range(n):
            before += V[i, a] * V[i, a]
        for sweep in range(2):
            for j in range(i):
                dot = 0.0
                for a in range(n):
                    dot += V[j, a] * V[i, a]
                for a in range(n):
                    V[i, a] -= dot * V[j, a]
            norm2 = 0.0
            for a in range(n):
                norm2 += V[i, a] * V[i, a]
            if i == 0 or norm2 > 0.25 * before:
                break
            before = norm2
        norm = math.sqrt(norm2)
        r[i] = norm
        inv = 1.0 / norm
        for a in range(n):
            V[i, a] *= inv


@njit(cache=True, nogil=True)
def _all_finite(a):
    for v in a.flat:
        if not math.isfinite(v):
            return False
    return True


@njit(cache=True, nogil=True)
def _renormalise_after(t, transient, steps, every):
    done = t + 1
    if done <= transient:
        return done % every == 0 or done == transient
    s = done - transient
    return s % every == 0 or s == steps


@njit(cache=True, nogil=True)
def _first_record(record_at, s):
    """Index of the first record strictly after post-transient step count ``s``."""
    i = 0
    while i < record_at.shape[0] and record_at[i] <= s:
        i += 1
    return i


@njit(cache=True, nogil=True)
def _book(r, prod, acc):
    """Multiply the stretching factors into the running products; take logs only when needed."""
    for i in range(r.shape[0]):
        prod[i] *= r[i]
        if not (_FLUSH_LOW < prod[i] < _FLUSH_HIGH):
            acc[i] += math.log(prod[i])
            prod[i] = 1.0


@njit(cache=True, nogil=True)
def _condition(r):
    """``max r_i / min r_i``: a lower bound on the condition number of the un-normalised basis."""
    lo, hi = r[0], r[0]
    for i in range(1, r.shape[0]):
        lo, hi = min(lo, r[i]), max(hi, r[i])
    return hi / lo


@njit(cache=True, nogil=True)
def _flush(prod, acc):
    for i in range(prod.shape[0]):
        acc[i] += math.log(prod[i])
        prod[i] = 1.0


@njit(cache=True, parallel=True)
def tangent_chunk(step, jacobian, params, X, V, U, t0, t1, transient, steps, every,
                  record_at, acc, cum, cond, blow):  # fmt: skip
    """Advance every member from step t0 to t1 (state X, basis rows V, log sums acc, records cum)."""
    E, n = X.shape
    k = V.shape[1]
    for e in prange(E):
        if blow[e] >= 0:
            continue
        Ue = U[0] if U.shape[0] == 1 else U[e]
        x, xn = X[e].copy(), np.empty(n)
        v, vn = V[e].copy(), np.empty((k, n))
        J, r = np.empty((n, n)), np.empty(k)
        a, prod = acc[e].copy(), np.ones(k)
        ri = _first_record(record_at, max(t0 - transient, 0))
        for t in range(t0, t1):
            u = Ue[t]
            jacobian(x, u, params, J)
            step(x, u, params, xn)
            _tangent_product(J, v, vn)
            x, xn = xn, x
            v, vn = vn, v
            if _renormalise_after(t, transient, steps, every):
                _gram_schmidt(v, r)
                if not (_all_finite(x) and _all_finite(r)):
                    blow[e] = t + 1
                    break
                cond[e] = max(cond[e], _condition(r))
                s = t + 1 - transient
                if s > 0:
                    _book(r, prod, a)
                    if ri < record_at.shape[0] and s == record_at[ri]:
                        _flush(prod, a)
                        cum[e, ri, :] = a
                        ri += 1
        _flush(prod, a)
        X[e], V[e], acc[e] = x, v, a


@njit(cache=True, parallel=True)
def twin_chunk(step, params, X, Y, U, t0, t1, transient, steps, every, separation, period,
               record_at, acc, cum, cond, blow):  # fmt: skip
    """Advance reference X and perturbed Y, renormalising ``|Y − X|`` to ``separation``."""
    E, n = X.shape
    for e in prange(E):
        if blow[e] >= 0:
            continue
        Ue = U[0] if U.shape[0] == 1 else U[e]
        x, xn, y, yn, d = X[e].copy(), np.empty(n), Y[e].copy(), np.empty(n), np.empty(n)
        a = acc[e]
        ri = _first_record(record_at, max(t0 - transient, 0))
        for t in range(t0, t1):
            u = Ue[t]
            step(x, u, params, xn)
            step(y, u, params, yn)
            x, xn = xn, x
            y, yn = yn, y
            if _renormalise_after(t, transient, steps, every):
                dist2 = 0.0
                for i in range(n):
                    d[i] = y[i] - x[i]
                    if period > 0.0:
                        d[i] = (d[i] + 0.5 * period) % period - 0.5 * period
                    dist2 += d[i] * d[i]
                dist = math.sqrt(dist2)
                if not (_all_finite(x) and math.isfinite(dist) and dist > 0.0):
                    blow[e] = t + 1
                    break
                for i in range(n):
                    y[i] = x[i] + d[i] * (separation / dist)
                s = t + 1 - transient
                if s > 0:
                    a[0] += math.log(dist / separation)
                    if ri < record_at.shape[0] and s == record_at[ri]:
                        cum[e, ri, 0] = a[0]
                        ri += 1
        X[e], Y[e] = x, y
