"""Nopython loops of Ginelli's method for the numba backend.

The forward loop factory returns a closure over the map's kernels, specialised on ``(n, k)`` so that
LLVM unrolls the small loops of low-dimensional maps, and cached on disk like the tangent loop
(``lyapkit.backends._numba_cache``). Tangent vectors are rows (``Q`` is stored as ``Qᵀ``, (k, n),
contiguous). The QR of ``J Q`` is modified Gram–Schmidt with a second projection pass for a row
that lost more than three quarters of its squared length (Daniel–Gragg–Kaufman–Stewart 1976), so
``Q`` stays orthonormal to rounding, and ``R`` is read off the projection coefficients.

A member's forward pass is two chains that meet only through the Jacobians: the *state chain*
``x_{t+1} = f(x_t, u_t)`` with ``J_t = ∂f/∂x (x_t, u_t)``, and the *tangent chain* ``J_t Q_t =
Q_{t+1} R_t``. The loop runs them in blocks of ``B`` steps through a two-slot buffer per member.
With fewer members than threads it *pipelines* them: one task computes block ``c``'s states and
Jacobians while another factors block ``c − 1``'s, so a single trajectory uses two cores (the two
chains cost about the same for a small map: the map's transcendental functions against the
dependent chain of Gram–Schmidt). With more members the ``prange`` is over members, each running
its two chains one block after the other. Both orders do the same arithmetic: the results are
bit-identical.

The backward loop solves ``R_s C = C_{s+1}`` by back substitution on the upper triangle only
(``C`` stays upper triangular) and forms ``V_s = Q_s C_s`` at the kept steps, in place of the
stored basis. It is pipelined the same way: the chain of coefficients runs one block ahead (down
in ``s``) of the products ``Q_s C_s``, which it hands over in place of ``R_s``.
"""

import functools
import math

import numpy as np
from numba import njit, prange

from lyapkit.backends._numba_cache import cached_njit, loop_key

_FAST = {"contract", "reassoc", "nsz", "arcp"}  # no nnan/ninf: the finiteness checks stay
_inline = njit(inline="always", error_model="numpy", fastmath=_FAST)


@_inline
def _gram_schmidt(W, Q, R, n, k):
    """Thin QR of the rows of ``W`` (k, n): ``W[i] = Σ_{j≤i} R[j, i] Q[j]``, ``R[i, i] > 0``, by
    modified Gram–Schmidt with the second pass of Daniel–Gragg–Kaufman–Stewart (1976) for a row
    that lost more than three quarters of its squared length. ``R[j, i]`` is the sum of the
    passes' coefficients ``q_j · w``.

    The tangent loop's passes (``_numba_loops._passes``) divide by ``|v_j|²`` (its rows are not
    normalised) and give no coefficients; here the rows are unit, and dividing by ones, or
    recomputing ``R[j, i] = q_j · w_i``, costs a fifth of the forward pass.

    Returns False when a row had nothing left (``R[i, i] = 0``: a collapsed direction) or is not
    finite.
    """
    for i in range(k):
        before = 0.0
        for a in range(n):
            Q[i, a] = W[i, a]
            before += W[i, a] * W[i, a]
        for j in range(k):
            R[j, i] = 0.0
        norm2 = before
        for _sweep in range(2):
            for j in range(i):
                dot = 0.0
                for a in range(n):
                    dot += Q[j, a] * Q[i, a]
                R[j, i] += dot
                for a in range(n):
                    Q[i, a] -= dot * Q[j, a]
            norm2 = 0.0
            for a in range(n):
                norm2 += Q[i, a] * Q[i, a]
            if i == 0 or norm2 > 0.25 * before:
                break
            before = norm2
        norm = math.sqrt(norm2)
        R[i, i] = norm
        if not (norm > 0.0 and math.isfinite(norm)):
            return False
        inv = 1.0 / norm
        for a in range(n):
            Q[i, a] *= inv
    return True


@_inline
def packed(i, j, k):
    """The place of entry ``(i, j)``, ``i ≤ j``, of a ``k × k`` upper triangle stored by rows:
    ``k (k + 1) / 2`` numbers, so the factors take 21 of 36 for ``k = 6``."""
    return i * k - (i * (i - 1)) // 2 + j - i


#: Steps per partial sum of the backward pass's ``log (R_s)_ii``.
_LOG_WINDOW = 1024

#: Float64 entries of Jacobians in one slot of a member's block buffer (256 KiB: cache-resident),
#: and at most in the buffers of all members.
_SLOT, _BUFFER = 2**15, 2**22


def block_size(members: int, n: int) -> int:
    """Steps per block of the forward loop for ``members`` members in ``n`` dimensions: as many
    as fill a slot (fewer barriers between the pipelined chains), within the total buffer."""
    return max(1, min(_SLOT, _BUFFER // (2 * members)) // (n * n))


@functools.cache
def forward_loop(step, jacobian, n, k):
    """The forward pass of kernels ``step`` and ``jacobian`` for ``k`` vectors in ``n`` dimensions:
    ``chunk(params, X, Q, U, t0, t1, transient, keep, factors, bases, states, blow, Js, xs, stops,
    pipelined)`` advances every member from step ``t0`` to ``t1`` (X (E, n), rows Q (E, k, n)). It
    stores ``R_s`` in ``factors`` (E, steps + tail, k (k + 1) / 2: the upper triangle by rows, see
    :func:`packed`) for every post-transient step ``s = t −
    transient ≥ 0``, the basis (rows) and state at the steps ``keep`` (K,) in ``bases`` (E, K, k,
    n) and ``states`` (E, K, n), and sets ``blow`` (E,) to the step after which a member became
    non-finite or collapsed. ``Js`` (E, 2, B, n, n), ``xs`` (E, 2, B, n) and ``stops`` (E, 2) are
    the blocks' buffers; ``pipelined`` runs each member's state chain one block ahead of its
    tangent chain, on another thread (see the module docstring). No logarithm is taken here: the
    backward pass sums ``log (R_s)_ii`` as it reads the factors."""

    @njit(error_model="numpy", fastmath=_FAST, inline="always")
    def states_block(params, x_io, U, t0, count, Js, xs):
        """The state chain over steps ``t0 … t0 + count − 1``: ``xs[j] = x_t`` and ``Js[j] = J_t``
        (``t = t0 + j``), ``x_io`` advanced. Returns the first ``j`` whose new state is not finite
        (the block stops after it), or −1."""
        x, xn, u = x_io.copy(), np.empty(n), np.empty(U.shape[1])
        stop = -1
        for j in range(count):
            for i in range(U.shape[1]):
                u[i] = U[t0 + j, i]
            for a in range(n):
                xs[j, a] = x[a]
            jacobian(x, u, params, Js[j])
            step(x, u, params, xn)
            finite = True
            for a in range(n):
                x[a] = xn[a]
                finite = finite and math.isfinite(xn[a])
            if not finite:
                stop = j
                break
        x_io[:] = x
        return stop

    @njit(error_model="numpy", fastmath=_FAST, inline="always")
    def tangent_block(q_io, t0, count, stop, Js, xs, transient, keep, factors, bases, states):
        """The tangent chain over the block that :func:`states_block` filled (``stop`` its
        result). Returns the step after which the member became non-finite or collapsed, or
        −1."""
        q, W, R = q_io.copy(), np.empty((k, n)), np.empty((k, k))
        ki = np.searchsorted(keep, t0 - transient)
        blown = -1
        for j in range(count):
            t = t0 + j
            s = t - transient
            if ki < keep.shape[0] and s == keep[ki]:
                for i in range(k):
                    for a in range(n):
                        bases[ki, i, a] = q[i, a]
                for a in range(n):
                    states[ki, a] = xs[j, a]
                ki += 1
            J = Js[j]
            for i in range(k):
                for a in range(n):
                    acc_ = 0.0
                    for b in range(n):
                        acc_ += J[a, b] * q[i, b]
                    W[i, a] = acc_
            if not _gram_schmidt(W, q, R, n, k) or j == stop:
                blown = t + 1
                break
            if s >= 0:
                p = 0
                for i in range(k):
                    for jj in range(i, k):
                        factors[s, p] = R[i, jj]
                        p += 1
        q_io[:] = q
        return blown

    @cached_njit(loop_key("clv_forward", (step, jacobian), n, k), parallel=True, fastmath=_FAST)
    def chunk(
        params, X, Q, U, t0, t1, transient, keep, factors, bases, states, blow, Js, xs, stops,
        pipelined,
    ):  # fmt: skip
        E, B = X.shape[0], Js.shape[2]
        blocks = (t1 - t0 + B - 1) // B
        lag = 1 if pipelined else 0  # blocks by which the state chain runs ahead
        for c in range(blocks + lag):
            halted = blow.copy()  # read by the state chains while the tangent chains set blow
            for task in prange(E * (1 + lag)):
                i = np.int64(task)  # prange indices are unsigned: keep the divisions integer
                e, role = (i // 2, i % 2) if pipelined else (i, np.int64(-1))
                if halted[e] >= 0:
                    continue
                # a state chain that stopped (not finite) waits for its tangent chain to end it
                if role != 1 and c < blocks and not (c > 0 and stops[e, (c - 1) % 2] >= 0):
                    start = t0 + c * B
                    stops[e, c % 2] = states_block(
                        params, X[e], U[min(np.int64(e), U.shape[0] - 1)], start,
                        min(B, t1 - start), Js[e, c % 2], xs[e, c % 2],
                    )  # fmt: skip
                if role != 0 and c >= lag:
                    b = c - lag
                    start = t0 + b * B
                    blow[e] = tangent_block(
                        Q[e], start, min(B, t1 - start), stops[e, b % 2], Js[e, b % 2],
                        xs[e, b % 2], transient, keep, factors[e], bases[e], states[e],
                    )  # fmt: skip

    return chunk


@functools.cache
def backward_loop(n, k):
    """The backward pass for ``k`` vectors in ``n`` dimensions: ``run(factors, C, keep, blow,
    bases, B, pipelined, steps, log_stretch)`` iterates ``C ← R_s⁻¹ C`` (unit columns) from ``C``
    (E, k, k) for ``s`` from the last stored factor down to 0, in blocks of ``B`` steps, and
    overwrites the kept bases (rows, (E, K, k, n)) with the CLVs ``V_s = Q_s C_s`` as rows of unit
    length; members with ``blow ≥ 0`` get NaN. ``C_s`` (upper triangular too) replaces ``R_s`` in
    ``factors`` (packed, :func:`packed`) at the kept steps. It also adds ``Σ_{s < steps} log
    (R_s)_ii`` to ``log_stretch`` (E, k; zeros on entry): the coefficient chain reads every
    ``R_s`` anyway, and the logarithms and reciprocals of the diagonal, independent of its chain,
    overlap with it (a separate pass over the diagonal is memory-bound: the whole array for ``k``
    numbers a step).
    With ``pipelined``, a second thread per member forms a block's CLVs while the first runs the
    coefficients of the next block down."""

    @njit(error_model="numpy", fastmath=_FAST, inline="always")
    def coefficients_block(R, C, keep, lo, hi, steps, partial, log_stretch):
        """``C ← R_s⁻¹ C`` for ``s = hi − 1 … lo``, keeping ``C_s`` in ``R[s]`` at kept steps, and
        ``log_stretch += Σ_{s < steps} log diag R_s``: summed in ``partial`` over the fixed windows
        of ``_LOG_WINDOW`` steps, each added when the pass reaches its first step, so the rounding
        does not depend on the block size (which depends on the ensemble size)."""
        ki = np.searchsorted(keep, hi) - 1
        reciprocal = np.empty(k)
        for s in range(hi - 1, lo - 1, -1):
            for i in range(k):  # off the chain of C: 1/R_ii, and the logarithms
                reciprocal[i] = 1.0 / R[s, packed(i, i, k)]
            if s < steps:
                for i in range(k):
                    partial[i] += math.log(R[s, packed(i, i, k)])
                if s % _LOG_WINDOW == 0:
                    for i in range(k):
                        log_stretch[i] += partial[i]
                        partial[i] = 0.0
            for j in range(k):  # column j: back substitution on rows i <= j
                norm2 = 0.0
                for i in range(j, -1, -1):
                    acc = C[i, j]
                    for m in range(i + 1, j + 1):
                        acc -= R[s, packed(i, m, k)] * C[m, j]
                    C[i, j] = acc * reciprocal[i]
                    norm2 += C[i, j] * C[i, j]
                inv = 1.0 / math.sqrt(norm2)
                for i in range(j + 1):
                    C[i, j] *= inv
            if ki >= 0 and s == keep[ki]:
                for i in range(k):
                    for j in range(i, k):
                        R[s, packed(i, j, k)] = C[i, j]
                ki -= 1

    @njit(error_model="numpy", fastmath=_FAST, inline="always")
    def vectors_block(R, keep, bases, lo, hi):
        """``V_s = Q_s C_s`` (unit rows) in place of the kept bases of steps ``lo ≤ s < hi``."""
        for ki in range(np.searchsorted(keep, lo), np.searchsorted(keep, hi)):
            Q, C = bases[ki], R[keep[ki]]
            for j in range(k - 1, -1, -1):  # in place: row j of V needs the rows i <= j of Q
                norm2 = 0.0
                for a in range(n):
                    acc = 0.0
                    for i in range(j + 1):
                        acc += C[packed(i, j, k)] * Q[i, a]
                    Q[j, a] = acc
                    norm2 += acc * acc
                inv = 1.0 / math.sqrt(norm2)
                for a in range(n):
                    Q[j, a] *= inv

    @cached_njit(
        loop_key("clv_backward", (), n, k), parallel=True, error_model="numpy", fastmath=_FAST
    )
    def run(factors, C0, keep, blow, bases, B, pipelined, steps, log_stretch):
        E, S = factors.shape[0], factors.shape[1]
        C, partial = C0.copy(), np.zeros(log_stretch.shape)
        blocks = (S + B - 1) // B
        lag = 1 if pipelined else 0  # blocks by which the coefficients run ahead of the vectors
        for e in range(E):
            if blow[e] >= 0:
                bases[e, :, :, :] = np.nan
        for c in range(blocks + lag):
            for task in prange(E * (1 + lag)):
                i = np.int64(task)  # prange indices are unsigned: keep the divisions integer
                e, role = (i // 2, i % 2) if pipelined else (i, np.int64(-1))
                if blow[e] >= 0:
                    continue
                if role != 1 and c < blocks:
                    coefficients_block(
                        factors[e], C[e], keep, max(0, S - (c + 1) * B), S - c * B, steps,
                        partial[e], log_stretch[e],
                    )  # fmt: skip
                if role != 0 and c >= lag:
                    b = c - lag
                    vectors_block(factors[e], keep, bases[e], max(0, S - (b + 1) * B), S - b * B)

    return run
