"""Numba kernels of the built-in maps: ``step(x, u, p, out)`` and ``jacobian(x, u, p, J)``, and the
WCRNN's parameter-Jacobian kernels (signatures in :class:`lyapkit.maps.base.NumbaKernels`).

Each kernel acts on one state ``x`` of shape ``(dim,)`` and writes its result in place; ``p`` is the
parameter tuple returned by the map's ``numba_kernels()``. Imported lazily (numba is optional).
"""

import math

import numpy as np
from numba import njit

_jit = njit(cache=True, fastmath=False, nogil=True)


@_jit
def henon_step(x, u, p, out):
    a, b = p
    out[0] = 1.0 - a * x[0] * x[0] + x[1]
    out[1] = b * x[0]


@_jit
def henon_jacobian(x, u, p, J):
    a, b = p
    J[0, 0] = -2.0 * a * x[0]
    J[0, 1] = 1.0
    J[1, 0] = b
    J[1, 1] = 0.0


@_jit
def logistic_step(x, u, p, out):
    out[0] = p[0] * x[0] * (1.0 - x[0])


@_jit
def logistic_jacobian(x, u, p, J):
    J[0, 0] = p[0] * (1.0 - 2.0 * x[0])


@_jit
def tent_step(x, u, p, out):
    out[0] = p[0] * min(x[0], 1.0 - x[0])


@_jit
def tent_jacobian(x, u, p, J):
    J[0, 0] = p[0] if x[0] < 0.5 else -p[0]


@_jit
def cat_step(x, u, p, out):
    out[0] = (2.0 * x[0] + x[1]) % 1.0
    out[1] = (x[0] + x[1]) % 1.0


@_jit
def cat_jacobian(x, u, p, J):
    J[0, 0] = 2.0
    J[0, 1] = 1.0
    J[1, 0] = 1.0
    J[1, 1] = 1.0


@_jit
def coupled_standard_step(x, u, p, out):
    k, coupling = p
    M = k.shape[0]
    two_pi = 2.0 * math.pi
    for i in range(M):
        th = x[i]
        kick = k[i] * math.sin(th) - coupling * (
            math.sin(x[(i + 1) % M] - th) + math.sin(x[(i - 1) % M] - th)
        )
        mom = x[M + i] + kick
        out[i] = (th + mom) % two_pi
        out[M + i] = mom % two_pi


@_jit
def coupled_standard_jacobian(x, u, p, J):
    k, coupling = p
    M = k.shape[0]
    J[:, :] = 0.0
    for i in range(M):
        th = x[i]
        right, left = (i + 1) % M, (i - 1) % M
        c_right = coupling * math.cos(x[right] - th)
        c_left = coupling * math.cos(x[left] - th)
        # K = ∂p'/∂θ is stored in the lower-left block, then copied to the upper-left block.
        J[M + i, i] += k[i] * math.cos(th) + c_right + c_left
        J[M + i, right] -= c_right
        J[M + i, left] -= c_left
    for i in range(M):
        for j in range(M):
            J[i, j] = J[M + i, j]
        J[i, i] += 1.0
        J[i, M + i] = 1.0
        J[M + i, M + i] = 1.0


@_jit
def linear_step(x, u, p, out):
    A, B = p
    out[:] = np.dot(A, x)
    if B.shape[1] > 0:
        out += np.dot(B, u)


@_jit
def linear_jacobian(x, u, p, J):
    J[:, :] = p[0]


@_jit
def tanh_network_step(x, u, p, out):
    gW, U, b = p
    pre = np.dot(gW, x) + b
    if U.shape[1] > 0:
        pre += np.dot(U, u)
    out[:] = np.tanh(pre)


@_jit
def tanh_network_jacobian(x, u, p, J):
    gW, U, b = p
    pre = np.dot(gW, x) + b
    if U.shape[1] > 0:
        pre += np.dot(U, u)
    n = x.shape[0]
    for i in range(n):
        d = 1.0 - math.tanh(pre[i]) ** 2
        for j in range(n):
            J[i, j] = d * gW[i, j]


@_jit
def _wcrnn_drive(x, u, W, V, b):
    pre = np.dot(W, x) + b
    if V.shape[1] > 0:
        pre += np.dot(V, u)
    return pre


@_jit
def wcrnn_step(x, u, p, out):
    variant, R, W, gamma, V, b = p
    pre = _wcrnn_drive(x, u, W, V, b)
    res = np.dot(R, x)
    for i in range(x.shape[0]):
        if variant == 2:
            out[i] = math.tanh(res[i] + gamma[i] * pre[i])
        elif variant == 1:
            out[i] = math.tanh(res[i]) + gamma[i] * math.tanh(pre[i])
        else:
            out[i] = res[i] + gamma[i] * math.tanh(pre[i])


@_jit
def wcrnn_jacobian(x, u, p, J):
    variant, R, W, gamma, V, b = p
    pre = _wcrnn_drive(x, u, W, V, b)
    res = np.dot(R, x)
    n = x.shape[0]
    for i in range(n):
        if variant == 2:
            d = 1.0 - math.tanh(res[i] + gamma[i] * pre[i]) ** 2
            for j in range(n):
                J[i, j] = d * (R[i, j] + gamma[i] * W[i, j])
        else:
            dr = 1.0 if variant == 0 else 1.0 - math.tanh(res[i]) ** 2
            dw = gamma[i] * (1.0 - math.tanh(pre[i]) ** 2)
            for j in range(n):
                J[i, j] = dr * R[i, j] + dw * W[i, j]


# WCRNN parameter Jacobian: row-local, ∂f_i/∂θ_kj = δ_ik d_i z_j (see lyapkit.maps.wcrnn). Codes
# index lyapkit.maps.wcrnn.PARAMETERS = (R, W, gamma, V, b); each selects a row of the factors
# returned by _wcrnn_factors (d_res, d_drive, d_gamma) and an input z (x, x, 1, u, 1).
_WCRNN_FACTOR = (0, 1, 2, 1, 1)


@_jit
def _wcrnn_factors(x, u, p):
    """``(3, n)``: the row factors ``d`` of R, of W, V and b, and of γ."""
    variant, R, W, gamma, V, b = p
    pre = _wcrnn_drive(x, u, W, V, b)
    res = np.dot(R, x)
    F = np.empty((3, x.shape[0]))
    for i in range(x.shape[0]):
        if variant == 2:
            dy = 1.0 - math.tanh(res[i] + gamma[i] * pre[i]) ** 2
            F[0, i], F[1, i], F[2, i] = dy, dy * gamma[i], dy * pre[i]
        else:
            a = math.tanh(pre[i])
            F[0, i] = 1.0 if variant == 0 else 1.0 - math.tanh(res[i]) ** 2
            F[1, i] = gamma[i] * (1.0 - a * a)
            F[2, i] = a
    return F


@_jit
def _wcrnn_row_input(code, x, u, one):
    """The input ``z`` of the parameter with this code."""
    if code <= 1:
        return x
    return u if code == 3 else one


@_jit
def wcrnn_parameter_jacobian(x, u, p, codes, out):
    """``out (n, P) = ∂f/∂θ``: ``out[i, block(θ) + i q + j] = d_i z_j``, zero elsewhere."""
    F, one, n = _wcrnn_factors(x, u, p), np.ones(1), x.shape[0]
    out[:, :] = 0.0
    offset = 0
    for code in codes:
        d, z = F[_WCRNN_FACTOR[code]], _wcrnn_row_input(code, x, u, one)
        q = z.shape[0]
        for i in range(n):
            for j in range(q):
                out[i, offset + i * q + j] = d[i] * z[j]
        offset += n * q


@_jit
def wcrnn_parameter_jvp(x, u, p, codes, V, out):
    """``out[r] += (∂f/∂θ) V[r]``: ``out[r, i] += d_i Σ_j V[r, block(θ) + i q + j] z_j``."""
    F, one, n = _wcrnn_factors(x, u, p), np.ones(1), x.shape[0]
    offset = 0
    for code in codes:
        d, z = F[_WCRNN_FACTOR[code]], _wcrnn_row_input(code, x, u, one)
        q = z.shape[0]
        for r in range(V.shape[0]):
            for i in range(n):
                s = 0.0
                for j in range(q):
                    s += V[r, offset + i * q + j] * z[j]
                out[r, i] += d[i] * s
        offset += n * q


@_jit
def wcrnn_parameter_vjp(x, u, p, codes, L, out):
    """``out[r] += (∂f/∂θ)ᵀ L[r]``: ``out[r, block(θ) + i q + j] += d_i L[r, i] z_j``."""
    F, one, n = _wcrnn_factors(x, u, p), np.ones(1), x.shape[0]
    offset = 0
    for code in codes:
        d, z = F[_WCRNN_FACTOR[code]], _wcrnn_row_input(code, x, u, one)
        q = z.shape[0]
        for r in range(L.shape[0]):
            for i in range(n):
                dl = d[i] * L[r, i]
                for j in range(q):
                    out[r, offset + i * q + j] += dl * z[j]
        offset += n * q
