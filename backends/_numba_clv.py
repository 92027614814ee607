"""Nopython loops of Ginelli's method for the numba backend (``prange`` over members).

The forward loop factory returns a closure over the map's kernels, specialised on ``(n, k)`` so that
LLVM unrolls the small loops of low-dimensional maps, and cached on disk like the tangent loop
(``lyapkit.backends._numba_cache``). Tangent vectors are rows (``Q`` is stored as ``Qᵀ``, (k, n),
contiguous). The QR of ``J Q`` is modified Gram–Schmidt with a second projection pass for a row
that lost more than three quarters of its squared length (Daniel–Gragg–Kaufman–Stewart 1976), so
``Q`` stays orthonormal to rounding (the tangent loop's passes, ``_numba_loops._passes``), and
``R[j, i] = q_j · w_i``.
The backward loop solves ``R_s C = C_{s+1}`` by back substitution on the upper triangle only
(``C`` stays upper triangular) and forms ``V_s = Q_s C_s`` at the kept steps, in place of the
stored basis.
"""

import functools
import math

import numpy as np
from numba import njit, prange

from lyapkit.backends._numba_cache import cached_njit, loop_key
from lyapkit.backends._numba_loops import _passes

_FAST = {"contract", "reassoc", "nsz", "arcp"}  # no nnan/ninf: the finiteness checks stay
_inline = njit(inline="always", error_model="numpy", fastmath=_FAST)


@_inline
def _gram_schmidt(W, Q, R, unit, n, k):
    """Thin QR of the rows of ``W`` (k, n): ``W[i] = Σ_{j≤i} R[j, i] Q[j]``, ``R[i, i] > 0``, by
    the tangent loop's projection passes (``unit`` is ``k`` ones: the rows of ``Q`` before row
    ``i`` are normalised); ``R[j, i] = Q[j] · W[i]``.

    Returns False when a row had nothing left (``R[i, i] = 0``: a collapsed direction) or is not
    finite.
    """
    for i in range(k):
        for a in range(n):
            Q[i, a] = W[i, a]
        norm = math.sqrt(_passes(Q, unit, i, n))
        for j in range(k):
            dot = 0.0
            if j < i:
                for a in range(n):
                    dot += Q[j, a] * W[i, a]
            R[j, i] = dot
        R[i, i] = norm
        if not (norm > 0.0 and math.isfinite(norm)):
            return False
        inv = 1.0 / norm
        for a in range(n):
            Q[i, a] *= inv
    return True


@functools.cache
def forward_loop(step, jacobian, n, k):
    """The forward pass of kernels ``step`` and ``jacobian`` for ``k`` vectors in ``n`` dimensions:
    ``chunk(params, X, Q, U, t0, t1, transient, keep, factors, bases, states, blow)`` advances
    every member from step ``t0`` to ``t1`` (X (E, n), rows Q (E, k, n)). It stores ``R_s`` in
    ``factors`` (E, steps + tail, k, k) for every post-transient step ``s = t − transient ≥ 0``,
    the basis (rows) and state at the steps ``keep`` (K,) in ``bases`` (E, K, k, n) and
    ``states`` (E, K, n), and sets ``blow`` (E,) to the step after which a member became
    non-finite or collapsed. No logarithm is taken per step: the caller sums ``log (R_s)_ii``
    from ``factors``, vectorised."""

    @njit(error_model="numpy", fastmath=_FAST, inline="always")
    def member(params, x_io, q_io, U, t0, t1, transient, keep, factors, bases, states):
        x, q = x_io.copy(), q_io.copy()
        xn, u, W = np.empty(n), np.empty(U.shape[1]), np.empty((k, n))
        J, R, unit = np.empty((n, n)), np.empty((k, k)), np.ones(k)
        ki = 0
        while ki < keep.shape[0] and keep[ki] < t0 - transient:
            ki += 1
        blown = -1
        for t in range(t0, t1):
            s = t - transient
            if ki < keep.shape[0] and s == keep[ki]:
                for i in range(k):
                    for a in range(n):
                        bases[ki, i, a] = q[i, a]
                for a in range(n):
                    states[ki, a] = x[a]
                ki += 1
            for i in range(U.shape[1]):
                u[i] = U[t, i]
            jacobian(x, u, params, J)
            step(x, u, params, xn)
            for i in range(k):
                for a in range(n):
                    acc_ = 0.0
                    for b in range(n):
                        acc_ += J[a, b] * q[i, b]
                    W[i, a] = acc_
            finite = True
            for a in range(n):
                x[a] = xn[a]
                finite = finite and math.isfinite(xn[a])
            if not (_gram_schmidt(W, q, R, unit, n, k) and finite):
                blown = t + 1
                break
            if s >= 0:
                for i in range(k):
                    for j in range(k):
                        factors[s, i, j] = R[i, j]
        x_io[:], q_io[:] = x, q
        return blown

    @cached_njit(loop_key("clv_forward", (step, jacobian), n, k), parallel=True, fastmath=_FAST)
    def chunk(params, X, Q, U, t0, t1, transient, keep, factors, bases, states, blow):
        for e in prange(X.shape[0]):
            if blow[e] < 0:
                blow[e] = member(
                    params,
                    X[e],
                    Q[e],
                    U[min(np.int64(e), U.shape[0] - 1)],
                    t0,
                    t1,
                    transient,
                    keep,
                    factors[e],
                    bases[e],
                    states[e],
                )

    return chunk


@functools.cache
def backward_loop(n, k):
    """The backward pass for ``k`` vectors in ``n`` dimensions: ``run(factors, C, keep, bases,
    blow)`` iterates ``C ← R_s⁻¹ C`` (unit columns) from ``C`` (E, k, k) for ``s`` from the last
    stored factor down to 0 and overwrites the kept bases (rows, (E, K, k, n)) with the CLVs
    ``V_s = Q_s C_s`` as rows of unit length; members with ``blow ≥ 0`` get NaN."""

    @cached_njit(
        loop_key("clv_backward", (), n, k), parallel=True, error_model="numpy", fastmath=_FAST
    )
    def run(factors, C0, keep, bases, blow):
        for e in prange(factors.shape[0]):
            if blow[e] >= 0:
                bases[e, :, :, :] = np.nan
                continue
            R, C, V = factors[e], C0[e].copy(), np.empty((k, n))
            ki = keep.shape[0] - 1
            for s in range(R.shape[0] - 1, -1, -1):
                for j in range(k):  # column j: back substitution on rows i <= j
                    norm2 = 0.0
                    for i in range(j, -1, -1):
                        acc = C[i, j]
                        for m in range(i + 1, j + 1):
                            acc -= R[s, i, m] * C[m, j]
                        C[i, j] = acc / R[s, i, i]
                        norm2 += C[i, j] * C[i, j]
                    inv = 1.0 / math.sqrt(norm2)
                    for i in range(j + 1):
                        C[i, j] *= inv
                if ki >= 0 and s == keep[ki]:
                    Q = bases[e, ki]
                    for j in range(k):
                        norm2 = 0.0
                        for a in range(n):
                            acc = 0.0
                            for i in range(j + 1):
                                acc += C[i, j] * Q[i, a]
                            V[j, a] = acc
                            norm2 += acc * acc
                        inv = 1.0 / math.sqrt(norm2)
                        for a in range(n):
                            V[j, a] *= inv
                    for j in range(k):
                        for a in range(n):
                            Q[j, a] = V[j, a]
                    ki -= 1

    return run
