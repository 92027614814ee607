"""Nopython GGN loops of the numba backend (``prange`` over ensemble members).

Each factory returns its loop as a closure over the map's kernels (``step``, ``jacobian`` and the
parameter kernels of :class:`lyapkit.maps.base.NumbaKernels`), compiled once per kernel set and
cached on disk (``lyapkit.backends._numba_cache``). Directions are rows (``(k, P)``, tangents
``(k, n)``), as in ``lyapkit.backends._numba_loops``.

``ggn_products`` gives each member's ``Σ_t (∂f/∂θ)_tᵀ λ_{t+1}`` (the ``G V`` of one member) by a
forward tangent sweep ``s_{t+1} = J_t s_t + (∂f/∂θ)_t v`` storing ``w_t = (1/N) H_ℓ(y_t) C s_t`` at
the outputs, then an adjoint sweep ``λ_t = J_tᵀ λ_{t+1} + Cᵀ w_t`` over the stored states.
``sensitivity_chunk`` advances the full sensitivities ``S_{t+1} = J_t S_t + (∂f/∂θ)_t`` and writes
the output Jacobians ``C S_t``, from which the caller builds the dense ``G`` with one GEMM.
"""

import functools
import math

import numpy as np
from numba import njit, prange

from lyapkit.backends._numba_cache import cached_njit, loop_key
from lyapkit.backends._numba_loops import _tangent_product

_helper = njit(error_model="numpy", fastmath={"contract"})


@_helper
def _adjoint_product(J, L, out, n, k):
    """``out = L J``: each row of L (an adjoint vector λ) mapped by ``Jᵀ``."""
    for r in range(k):
        for b in range(n):
            s = 0.0
            for a in range(n):
                s += L[r, a] * J[a, b]
            out[r, b] = s


@_helper
def _readout(C, c, x, y):
    """``y = C x + c``."""
    for i in range(C.shape[0]):
        s = c[i]
        for a in range(x.shape[0]):
            s += C[i, a] * x[a]
        y[i] = s


@_helper
def _output_curvature(y, z, cross_entropy, scale, w):
    """``w = scale · H_ℓ(y) z`` for the rows of ``z`` (k, o): ``H_ℓ = 2 I`` (mse) or
    ``diag(p) − p pᵀ`` with ``p = softmax(y)`` (cross-entropy)."""
    k, o = z.shape
    if not cross_entropy:
        for r in range(k):
            for i in range(o):
                w[r, i] = 2.0 * scale * z[r, i]
        return
    top = y.max()
    p = np.empty(o)
    total = 0.0
    for i in range(o):
        p[i] = math.exp(y[i] - top)
        total += p[i]
    for i in range(o):
        p[i] /= total
    for r in range(k):
        pz = 0.0
        for i in range(o):
            pz += p[i] * z[r, i]
        for i in range(o):
            w[r, i] = scale * p[i] * (z[r, i] - pz)


@functools.cache
def products_loop(step, jacobian, parameter_jvp, parameter_vjp):
    """The GGN-product loop of these kernels: ``chunk(params, codes, X0, U, Vt, C, c, ce, every,
    scale, out)`` sets ``out[e] = (G_e V)ᵀ`` (k, P) for directions ``Vt = Vᵀ`` (k, P);
    ``G = Σ_e G_e``. X0 (E, n) initial states, U (E, T, m) inputs, C (o, n) and c (o,) the
    readout, ``ce``: the cross-entropy loss (else mse), ``every``: outputs after every step (else
    the last), ``scale`` ``= 1/N``."""

    @njit(error_model="numpy", fastmath={"contract"})
    def member(
        params,
        codes,
        x0,
        U,
        Vt,
        C,
        c,
        ce,
        every,
        scale,
        g,
    ):
        """``g += (G_e V)ᵀ`` (k, P) of one member (``every``: outputs after every step)."""
        T, n = U.shape[0], x0.shape[0]
        k, o = Vt.shape[0], C.shape[0]
        xs = np.empty((T, n))
        w = np.empty((T if every else 1, k, o))
        x, xn, y = x0.copy(), np.empty(n), np.empty(o)
        s, sn, z = np.zeros((k, n)), np.empty((k, n)), np.empty((k, o))
        J = np.empty((n, n))
        for t in range(T):
            xs[t] = x
            jacobian(x, U[t], params, J)
            step(x, U[t], params, xn)
            _tangent_product(J, s, sn, n, k)
            parameter_jvp(x, U[t], params, codes, Vt, sn)
            x[:] = xn
            s[:] = sn
            if every or t == T - 1:
                _readout(C, c, x, y)
                for r in range(k):
                    for i in range(o):
                        acc = 0.0
                        for a in range(n):
                            acc += C[i, a] * s[r, a]
                        z[r, i] = acc
                _output_curvature(y, z, ce, scale, w[t if every else 0])
        lam, lamn = np.zeros((k, n)), np.empty((k, n))
        for t in range(T - 1, -1, -1):
            if every or t == T - 1:
                wt = w[t if every else 0]
                for r in range(k):
                    for a in range(n):
                        acc = 0.0
                        for i in range(o):
                            acc += wt[r, i] * C[i, a]
                        lam[r, a] += acc
            parameter_vjp(xs[t], U[t], params, codes, lam, g)
            if t > 0:
                jacobian(xs[t], U[t], params, J)
                _adjoint_product(J, lam, lamn, n, k)
                lam[:] = lamn

    @cached_njit(
        loop_key("ggn_products", (step, jacobian, parameter_jvp, parameter_vjp)), parallel=True
    )
    def chunk(
        params,
        codes,
        X0,
        U,
        Vt,
        C,
        c,
        ce,
        every,
        scale,
        out,
    ):
        for e in prange(X0.shape[0]):
            member(
                params,
                codes,
                X0[e],
                U[e],
                Vt,
                C,
                c,
                ce,
                every,
                scale,
                out[e],
            )

    return chunk


@functools.cache
def sensitivity_loop(step, jacobian, parameter_jacobian):
    """The sensitivity loop of these kernels: ``chunk(params, codes, X, S, U, t0, t1, C, c,
    all_outputs, A, Y)`` advances states X (E, n) and sensitivities S (E, n, P) in place through
    steps ``t0 ≤ t < t1``; the ``r``-th output in the window is written to ``A[e, r] = C S`` (o, P)
    and ``Y[e, r] = y``."""

    @cached_njit(
        loop_key("sensitivity", (step, jacobian, parameter_jacobian)),
        parallel=True,
        error_model="numpy",
    )
    def chunk(params, codes, X, S, U, t0, t1, C, c, all_outputs, A, Y):
        E, n = X.shape
        P, T, o = S.shape[2], U.shape[1], C.shape[0]
        for e in prange(E):
            x, xn, y = X[e].copy(), np.empty(n), np.empty(o)
            J, Jp, Sn, Se = np.empty((n, n)), np.empty((n, P)), np.empty((n, P)), S[e]
            r = 0
            for t in range(t0, t1):
                u = U[e, t]
                jacobian(x, u, params, J)
                parameter_jacobian(x, u, params, codes, Jp)
                step(x, u, params, xn)
                for a in range(n):
                    for p in range(P):
                        Sn[a, p] = Jp[a, p]
                    for b in range(n):
                        Jab = J[a, b]
                        for p in range(P):
                            Sn[a, p] += Jab * Se[b, p]
                Se[:, :] = Sn
                x[:] = xn
                if all_outputs or t == T - 1:
                    _readout(C, c, x, y)
                    for i in range(o):
                        Y[e, r, i] = y[i]
                        Ai = A[e, r, i]
                        Ai[:] = 0.0
                        for a in range(n):
                            Cia = C[i, a]
                            for p in range(P):
                                Ai[p] += Cia * Se[a, p]
                    r += 1
            X[e] = x

    return chunk
