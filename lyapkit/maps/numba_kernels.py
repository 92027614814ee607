"""Numba kernels of the built-in maps: ``step(x, u, p, out)`` and ``jacobian(x, u, p, J)``, and the
WCRNN's parameter-Jacobian kernels (signatures in :class:`lyapkit.maps.base.NumbaKernels`).

Each kernel acts on one state ``x`` of shape ``(dim,)`` and writes its result in place; ``p`` is the
parameter tuple returned by the map's ``numba_kernels()``. Imported lazily (numba is optional).
"""

import math

import numpy as np
from numba import njit

_jit = njit(cache=True, fastmath=False, nogil=True)


@njit(cache=True, fastmath=False, nogil=True, inline="always")
def _wrap(y, period):
    """``y % period`` (Python's, in ``[0, period)``), bit for bit, without its ``fmod`` and
    division when ``y`` is within one period of ``[0, period)``: ``y − period`` is exact there
    (Sterbenz's lemma), and for ``−period < y < 0`` Python's ``%`` also returns the rounded
    ``y + period``. Zero, the rest and NaN take ``%`` (``−0.0 % p`` is ``+0.0``)."""
    if 0.0 < y < period:
        return y
    if period <= y < 2.0 * period:
        return y - period
    if -period < y < 0.0:
        return y + period
    return y % period


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
    out[0] = _wrap(2.0 * x[0] + x[1], 1.0)
    out[1] = _wrap(x[0] + x[1], 1.0)


@_jit
def cat_jacobian(x, u, p, J):
    J[0, 0] = 2.0
    J[0, 1] = 1.0
    J[1, 0] = 1.0
    J[1, 1] = 1.0


@_jit
def coupled_standard_step(x, u, p, out):
    # sin(θ_{i−1} − θ_i) = −sin(θ_i − θ_{i−1}) exactly (sin is odd, the difference antisymmetric),
    # so each ring edge's sine is taken once: M + 1 sines of differences instead of 2M
    k, coupling = p
    M = k.shape[0]
    two_pi = 2.0 * math.pi
    left = -math.sin(x[0] - x[M - 1])
    for i in range(M):
        th = x[i]
        right = math.sin(x[(i + 1) % M] - th)
        kick = k[i] * math.sin(th) - coupling * (right + left)
        left = -right
        mom = x[M + i] + kick
        out[i] = _wrap(th + mom, two_pi)
        out[M + i] = _wrap(mom, two_pi)


@_jit
def coupled_standard_jacobian(x, u, p, J):
    # cos(θ_{i−1} − θ_i) = cos(θ_i − θ_{i−1}) exactly: each ring edge's cosine is taken once
    k, coupling = p
    M = k.shape[0]
    J[:, :] = 0.0
    c_left = coupling * math.cos(x[0] - x[M - 1])
    for i in range(M):
        th = x[i]
        right, left = (i + 1) % M, (i - 1) % M
        c_right = coupling * math.cos(x[right] - th)
        # K = ∂p'/∂θ is stored in the lower-left block, then copied to the upper-left block.
        J[M + i, i] += k[i] * math.cos(th) + c_right + c_left
        J[M + i, right] -= c_right
        J[M + i, left] -= c_left
        c_left = c_right
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


# Stacked PyTorch RNN / GRU / LSTM (lyapkit.maps.rnn.StackedRNNMap; equations there). The parameters
# are packed into two arrays, the same types for every stack (one compiled loop serves them all):
# p = (meta, w), w every layer's weights flattened row-major, meta (int64) the header
# (kind: 0 rnn_tanh, 1 rnn_relu, 2 gru, 3 lstm; input_size; hidden_size H; num_layers L; output
# size P = proj_size or H), then per layer the offsets in w of W_ih, W_hh, b_ih, b_hh, W_hr
# (−1: absent). The state is (h¹…hᴸ, c¹…cᴸ), each h of P entries, each c of H.
RNN_HEADER, RNN_ROLES = 5, 5


@_jit
def _sigmoid(a):
    return 0.5 * (1.0 + math.tanh(0.5 * a))


@_jit
def _rnn_gate_sum(alpha, W, H):
    """``Σ_g diag(α_g) W_g``: ``alpha`` (G, H), ``W`` (G·H, k) → (H, k)."""
    out = np.zeros((H, W.shape[1]))
    for g in range(alpha.shape[0]):
        for i in range(H):
            a = alpha[g, i]
            if a != 0.0:
                for j in range(W.shape[1]):
                    out[i, j] += a * W[g * H + i, j]
    return out


@_jit
def _stacked_rnn(x, u, p, out, J, jac):
    """``out = s'``; with ``jac`` also ``J = ∂s'/∂s``, built layer by layer (rows of layer ``l``:
    its own blocks plus ``(∂s'_l/∂x_l) · (rows of the new h of the layer below)``)."""
    meta, w = p
    kind, H, L, P = meta[0], meta[2], meta[3], meta[4]
    G = 1 if kind <= 1 else (3 if kind == 2 else 4)
    lstm = kind == 3
    if jac:
        J[:, :] = 0.0
    xl = np.zeros(meta[1])
    for i in range(min(meta[1], u.shape[0])):  # an empty u is the zero input
        xl[i] = u[i]
    Ah, Ax, B = np.zeros((G, H)), np.zeros((G, H)), np.zeros((G, H))
    diag, fc, dmc = np.zeros(H), np.zeros(H), np.zeros(H)
    c1 = np.zeros(H)
    for layer in range(L):
        o = meta[RNN_HEADER + RNN_ROLES * layer : RNN_HEADER + RNN_ROLES * (layer + 1)]
        m = xl.shape[0]
        W_ih = w[o[0] : o[0] + G * H * m].reshape((G * H, m))
        W_hh = w[o[1] : o[1] + G * H * P].reshape((G * H, P))
        h0, c0 = layer * P, L * P + layer * H
        h = x[h0 : h0 + P].copy()
        gi, gh = np.dot(W_ih, xl), np.dot(W_hh, h)
        if o[2] >= 0:
            gi += w[o[2] : o[2] + G * H]
            gh += w[o[3] : o[3] + G * H]
        hn = np.empty(H)  # the new h (before the projection of an LSTM with one)
        if kind <= 1:
            for i in range(H):
                a = gi[i] + gh[i]
                if kind == 0:
                    hn[i] = math.tanh(a)
                    Ah[0, i] = 1.0 - hn[i] * hn[i]
                else:
                    hn[i] = max(a, 0.0)
                    Ah[0, i] = 1.0 if a > 0.0 else 0.0
                Ax[0, i] = Ah[0, i]
        elif kind == 2:
            for i in range(H):
                r = _sigmoid(gi[i] + gh[i])
                z = _sigmoid(gi[H + i] + gh[H + i])
                q = gh[2 * H + i]
                n = math.tanh(gi[2 * H + i] + r * q)
                hn[i] = n + z * (h[i] - n)
                d = (1.0 - z) * (1.0 - n * n)
                Ah[0, i] = Ax[0, i] = d * q * r * (1.0 - r)
                Ah[1, i] = Ax[1, i] = (h[i] - n) * z * (1.0 - z)
                Ah[2, i], Ax[2, i] = d * r, d
                diag[i] = z
        else:
            for i in range(H):
                ig, f = _sigmoid(gi[i] + gh[i]), _sigmoid(gi[H + i] + gh[H + i])
                g = math.tanh(gi[2 * H + i] + gh[2 * H + i])
                og = _sigmoid(gi[3 * H + i] + gh[3 * H + i])
                c = x[c0 + i]
                c1[i] = f * c + ig * g
                tc = math.tanh(c1[i])
                hn[i] = og * tc
                kappa = og * (1.0 - tc * tc)
                B[0, i], B[1, i] = g * ig * (1.0 - ig), c * f * (1.0 - f)
                B[2, i] = ig * (1.0 - g * g)
                for k in range(3):
                    Ah[k, i] = Ax[k, i] = kappa * B[k, i]
                Ah[3, i] = Ax[3, i] = tc * og * (1.0 - og)
                fc[i], dmc[i] = f, kappa * f
        if o[4] >= 0:  # LSTM projection h' = W_hr m
            W_hr = w[o[4] : o[4] + P * H].reshape((P, H))
            h1 = np.dot(W_hr, hn)
        else:
            h1 = hn
        out[h0 : h0 + P] = h1
        if lstm:
            out[c0 : c0 + H] = c1
        if jac:
            Mh, Mx = _rnn_gate_sum(Ah, W_hh, H), _rnn_gate_sum(Ax, W_ih, H)
            if kind == 2:
                for i in range(H):
                    Mh[i, i] += diag[i]
            if o[4] >= 0:
                Mh, Mx = np.dot(W_hr, Mh), np.dot(W_hr, Mx)
                Mc = W_hr * dmc.reshape((1, H))
            J[h0 : h0 + P, h0 : h0 + P] += Mh
            if lstm:
                if o[4] >= 0:
                    J[h0 : h0 + P, c0 : c0 + H] += Mc
                else:
                    for i in range(H):
                        J[h0 + i, c0 + i] += dmc[i]
                J[c0 : c0 + H, h0 : h0 + P] += _rnn_gate_sum(B, W_hh, H)
                for i in range(H):
                    J[c0 + i, c0 + i] += fc[i]
            if layer > 0:
                # the layer below's new h depends on the states of the layers below only
                below = J[h0 - P : h0].copy()
                J[h0 : h0 + P] += np.dot(Mx, below)
                if lstm:
                    J[c0 : c0 + H] += np.dot(_rnn_gate_sum(B, W_ih, H), below)
        xl = h1


@_jit
def stacked_rnn_step(x, u, p, out):
    _stacked_rnn(x, u, p, out, np.empty((0, 0)), False)


@_jit
def stacked_rnn_jacobian(x, u, p, J):
    _stacked_rnn(x, u, p, np.empty(x.shape[0]), J, True)
