"""Nopython tangent, twin and trajectory loops of the numba backend (``prange`` over members).

Each factory returns its loop as a closure over the map's kernels, so a loop compiles once per
kernel set (and is then reused for every parameter value, which the loop takes as an argument)
and is cached on disk (``lyapkit.backends._numba_cache``). The tangent loop is also specialised
on ``(n, k)`` so that LLVM unrolls the small loops of low-dimensional maps. Tangent vectors are rows of ``V`` (k, n), contiguous;
``V ← V Jᵀ`` is ``Q ← J Q``.

Re-orthonormalisation is modified Gram–Schmidt *without normalisation*: row ``i`` is made
orthogonal to rows ``j < i`` by ``v_i −= (v_j·v_i / |v_j|²) v_j`` and keeps its length. Its
squared length then equals ``Π R_ii²`` of the normalised QR method, so the cumulative sum of
``log R_ii`` is read off as ``½ log|v_i|²`` (plus exact power-of-two rescalings applied when
``|v_i|²`` leaves ``[2⁻¹⁰⁰, 2¹⁰⁰]``). This takes no square root and no logarithm per step, and
one division per projection and per vector — the latencies that dominate small maps — and is
exact in exact arithmetic.

A vector that collapsed (a singular Jacobian) is found on the rare path of the rescaling, where
its squared length left ``[2⁻¹⁰⁰, 2¹⁰⁰]``: when nothing is left of it, or it shrank by more than
``2¹⁰⁰`` in one interval, the fast loop stops that member and hands the step to :func:`_finish`,
which checks it (a third projection pass) and, if it collapsed, gives it ``log R_ii = log 0 =
−inf`` and replaces it by a unit vector orthogonal to the previous ones; the member then goes on
in the *robust* variant of the loop, which does these checks in place. The fast loop's hot path
holds no code for any of this beyond one comparison on the rescaling path.
"""

import functools
import math

import numpy as np
from numba import njit, prange

from lyapkit.backends._numba_cache import cached_njit, loop_key

# |v_i|² is kept in [2⁻¹⁰⁰, 2¹⁰⁰], so a renormalisation interval may stretch a vector by up to
# ~2^±460 (1e±139) before its squared length over- or underflows.
_BIG, _TINY = 2.0**100, 2.0**-100
_LN2 = math.log(2.0)

_inline = njit(inline="always", error_model="numpy", fastmath={"contract"})


@_inline
def _tangent_product(J, V, out, n, k):
    """``out = V Jᵀ``: each row of V (a tangent vector) mapped by J.

    Explicit loops rather than BLAS: BLAS inside a ``prange`` region oversubscribes threads (and
    OpenBLAS warns about it), and for the small systems this backend is for, loops are faster.
    """
    for i in range(k):
        for a in range(n):
            s = 0.0
            for b in range(n):
                s += J[a, b] * V[i, b]
            out[i, a] = s


#: A row whose squared length shrank by more than this in one re-orthonormalisation interval (a
#: factor 2¹⁰⁰ ≈ 1e30 in length), or of which nothing is left, may have collapsed: it is checked.
_SUSPECT = 2.0**-200


@njit(error_model="numpy", fastmath={"contract"})
def _project_out(V, sq, i, w, n):
    """``w −= Σ_{j<i} (v_j·w / |v_j|²) v_j`` (one modified Gram–Schmidt pass); return ``|w|²``."""
    for j in range(i):
        dot = 0.0
        for a in range(n):
            dot += V[j, a] * w[a]
        c = dot / sq[j]
        for a in range(n):
            w[a] -= c * V[j, a]
    norm2 = 0.0
    for a in range(n):
        norm2 += w[a] * w[a]
    return norm2


@njit(error_model="numpy", fastmath={"contract"})
def _collapse_check(V, sq, i, norm2, n):
    """Check row ``i`` of ``V``, which had its projection passes and is suspect (``norm2``, its
    squared length, is 0 or it shrank by more than ``2²⁰⁰``); return its new squared length, or
    −1 when it collapsed.

    If a third pass still removes more than three quarters of it, what the passes left lies in the
    span of rows ``j < i`` to working precision (Kahan–Parlett: twice is enough unless the vector
    is numerically dependent), and the row has collapsed, as when nothing is left at all: it is
    replaced by the unit vector orthogonal to rows ``j < i`` nearest a coordinate axis. Otherwise
    it keeps the third pass (a vector that is merely short: strong contraction).
    """
    w = V[i]
    if norm2 > 0.0:
        again = _project_out(V, sq, i, w, n)
        if again > 0.25 * norm2:
            return again
    best, most = 0, -1.0
    for axis in range(n):
        w[:] = 0.0
        w[axis] = 1.0
        _project_out(V, sq, i, w, n)
        left = _project_out(V, sq, i, w, n)
        if left > most:
            best, most = axis, left
    w[:] = 0.0
    w[best] = 1.0
    _project_out(V, sq, i, w, n)
    inv = 1.0 / math.sqrt(_project_out(V, sq, i, w, n))
    for a in range(n):
        w[a] *= inv
    return -1.0


@_inline
def _passes(V, sq, i, n):
    """The one or two projection passes of row ``i`` (Daniel–Gragg–Kaufman–Stewart 1976: a second
    one when the first removed more than three quarters); return its squared length."""
    before = 0.0
    for a in range(n):
        before += V[i, a] * V[i, a]
    norm2 = before
    for _sweep in range(2):
        for j in range(i):
            dot = 0.0
            for a in range(n):
                dot += V[j, a] * V[i, a]
            c = dot / sq[j]
            for a in range(n):
                V[i, a] -= c * V[j, a]
        norm2 = 0.0
        for a in range(n):
            norm2 += V[i, a] * V[i, a]
        if i == 0 or norm2 > 0.25 * before:
            break
        before = norm2
    return norm2


@_inline
def _rescale(V, logscale, i, norm2, n):
    """Rescale row ``i`` by an exact power of two to ``|v_i|² ∈ [½, 2)``; return its new squared
    length."""
    half = math.frexp(norm2)[1] // 2
    scale = math.ldexp(1.0, -half)
    for a in range(n):
        V[i, a] *= scale
    logscale[i] += half * _LN2
    return math.ldexp(norm2, -2 * half)


@_inline
def _orthogonalise(V, sq, growth, logscale, n, k):
    """Unnormalised modified Gram–Schmidt of the rows of V (see the module docstring): the fast
    loop's.

    ``sq`` holds the squared lengths (updated), ``growth`` gets ``R_ii²``, ``logscale`` collects the
    logarithms of the rescalings. A row whose length dropped below half during the projections is
    projected a second time, so orthogonality holds to rounding even after many steps without
    re-orthonormalisation. A suspect row (see ``_SUSPECT``) stops the pass: its ``sq`` is negated
    (keeping the old value), the rows after it are left alone, and the caller hands the step to
    :func:`_finish`.
    """
    for i in range(k):
        norm2 = _passes(V, sq, i, n)
        growth[i] = norm2 / sq[i]
        if not (_TINY < norm2 < _BIG):  # rescale by an exact power of two (rare)
            if growth[i] < _SUSPECT:  # nothing left (0), or shrank by more than 2²⁰⁰
                sq[i] = -sq[i]
                return
            norm2 = _rescale(V, logscale, i, norm2, n)
        sq[i] = norm2


@_inline
def _orthogonalise_checked(V, sq, growth, logscale, first, n, k):
    """Rows ``first …`` of :func:`_orthogonalise`, suspect rows checked in place by
    :func:`_collapse_check` (the robust loop's, and :func:`_finish`'s). A collapsed row gets
    ``log R_ii = −inf`` in ``logscale`` and ``growth = −1``, which leaves this
    re-orthonormalisation out of the condition estimate (``max / min`` of ``growth`` is then
    negative). The check runs on copies of the rows, so that the loop's arrays never escape into
    a call."""
    for i in range(first, k):
        norm2 = _passes(V, sq, i, n)
        growth[i] = norm2 / sq[i]
        if not (_TINY < norm2 < _BIG):
            if growth[i] < _SUSPECT:  # nothing left (0), or shrank by more than 2²⁰⁰
                rows, lengths = np.empty((i + 1, n)), np.empty(i + 1)
                for j in range(i + 1):
                    lengths[j] = sq[j]
                    for a in range(n):
                        rows[j, a] = V[j, a]
                norm2 = _collapse_check(rows, lengths, i, norm2, n)
                for a in range(n):
                    V[i, a] = rows[i, a]
                if norm2 < 0.0:  # collapsed: log R_ii = log 0
                    norm2, logscale[i], growth[i] = 1.0, -math.inf, -1.0
                else:
                    growth[i] = norm2 / sq[i]
            if not (_TINY < norm2 < _BIG):
                norm2 = _rescale(V, logscale, i, norm2, n)
        sq[i] = norm2


def _finish(V, SQ, logscale, t, transient, record_at, cum):
    """Complete the re-orthonormalisation after step ``t`` that the fast loop stopped at a
    suspect row (``SQ < 0``) of one member, and its bookkeeping: the suspect row checked
    (:func:`_collapse_check`), the rows after it orthogonalised, the normalisation at the end of
    the transient, the record. Return −1, or ``t + 1`` when the basis is not finite. This
    re-orthonormalisation is left out of the condition estimate."""
    k, n = V.shape
    i = 0
    while SQ[i] > 0.0:
        i += 1
    SQ[i] = -SQ[i]
    norm2 = 0.0
    for a in range(n):
        norm2 += V[i, a] * V[i, a]
    norm2 = _collapse_check(V, SQ, i, norm2, n)
    if norm2 < 0.0:
        norm2, logscale[i] = 1.0, -math.inf
    elif not (_TINY < norm2 < _BIG):
        norm2 = _rescale(V, logscale, i, norm2, n)
    SQ[i] = norm2
    growth = np.empty(k)
    _orthogonalise_checked(V, SQ, growth, logscale, i + 1, n, k)
    if not _all_finite(SQ, k):
        return t + 1
    if t + 1 == transient:
        for i in range(k):
            inv = 1.0 / math.sqrt(SQ[i])
            for a in range(n):
                V[i, a] *= inv
            SQ[i], logscale[i] = 1.0, 0.0
    s = t + 1 - transient
    ri = _first_record(record_at, s - 1)
    if s > 0 and ri < record_at.shape[0] and s == record_at[ri]:
        for i in range(k):
            cum[ri, i] = logscale[i] + 0.5 * math.log(SQ[i])
    return -1


@functools.cache
def finisher():
    """:func:`_finish` compiled (once per process, or loaded from numba's disk cache)."""
    key = loop_key("finish", ())
    return cached_njit(key, error_model="numpy", fastmath={"contract"})(_finish)


@_inline
def _renormalise_after(t, transient, steps, every):
    done = t + 1
    if done <= transient:
        return done % every == 0 or done == transient
    s = done - transient
    return s % every == 0 or s == steps


@_inline
def _first_record(record_at, s):
    """Index of the first record strictly after post-transient step count ``s``."""
    i = 0
    while i < record_at.shape[0] and record_at[i] <= s:
        i += 1
    return i


@_inline
def _all_finite(a, n):
    ok = True
    for i in range(n):
        ok = ok and math.isfinite(a[i])
    return ok


@functools.cache
def tangent_loop(step, jacobian, n, k, robust=False):
    """The tangent loop of kernels ``step`` and ``jacobian``, specialised on state dimension ``n``
    and number of vectors ``k``: the fast loop, or with ``robust`` the one that checks suspect
    rows in place (for members after a step that :func:`_finish` completed).

    Returns ``chunk(params, X, V, SQ, U, t0, t1, transient, steps, every, record_at, logscale,
    cum, cond, blow)``, which advances every member from step t0 to t1 in
    parallel. State: X (E, n), unnormalised rows V (E, k, n), their squared lengths SQ (E, k) and
    the logs of their rescalings ``logscale`` (E, k); ``Σ log R_ii = logscale + ½ log SQ`` since the
    end of the transient, recorded into ``cum`` (E, R, k) at ``record_at``. The fast loop stops a
    member at a suspect row as if it blew up: ``blow`` is the step, with finite ``X`` and ``SQ``
    and a negative ``SQ`` entry (see :func:`_orthogonalise`); the caller then completes that step
    with :func:`_finish` and continues the member in the robust loop.
    """
    if robust:

        @_inline
        def orthogonalise(V, sq, growth, logscale, n, k):
            _orthogonalise_checked(V, sq, growth, logscale, 0, n, k)

    else:
        orthogonalise = _orthogonalise

    @njit(error_model="numpy", fastmath={"contract"}, inline="always")
    def member(
        params,
        x_io,
        v_io,
        sq_io,
        ls_io,
        U,
        t0,
        t1,
        transient,
        steps,
        every,
        record_at,
        cum,
        cond,
    ):
        """Advance one member in place; return the step after which it blew up, or −1."""
        # Private copies: LLVM then knows they alias nothing and keeps them in registers.
        x, v, sq, ls = x_io.copy(), v_io.copy(), sq_io.copy(), ls_io.copy()
        xn, u, vn = np.empty(n), np.empty(U.shape[1]), np.empty((k, n))
        J, growth = np.empty((n, n)), np.empty(k)
        worst, blown = cond[0] ** 2, -1
        ri = _first_record(record_at, max(t0 - transient, 0))
        for t in range(t0, t1):
            for i in range(U.shape[1]):
                u[i] = U[t, i]
            jacobian(x, u, params, J)
            step(x, u, params, xn)
            _tangent_product(J, v, vn, n, k)
            for a in range(n):
                x[a] = xn[a]
            for i in range(k):
                for a in range(n):
                    v[i, a] = vn[i, a]
            if not _renormalise_after(t, transient, steps, every):
                continue
            orthogonalise(v, sq, growth, ls, n, k)
            if not (_all_finite(x, n) and _all_finite(sq, k) and min(sq) > 0.0):
                blown = t + 1
                break
            worst = max(worst, max(growth) / min(growth))
            if t + 1 == transient:  # start averaging from an orthonormal basis
                for i in range(k):
                    inv = 1.0 / math.sqrt(sq[i])
                    for a in range(n):
                        v[i, a] *= inv
                    sq[i], ls[i] = 1.0, 0.0
            s = t + 1 - transient
            if s > 0 and ri < record_at.shape[0] and s == record_at[ri]:
                for i in range(k):
                    cum[ri, i] = ls[i] + 0.5 * math.log(sq[i])
                ri += 1
        x_io[:], v_io[:], sq_io[:], ls_io[:] = x, v, sq, ls
        cond[0] = math.sqrt(worst)
        return blown

    name = "tangent_robust" if robust else "tangent"

    @cached_njit(loop_key(name, (step, jacobian), n, k), parallel=True)
    def chunk(
        params,
        X,
        V,
        SQ,
        U,
        t0,
        t1,
        transient,
        steps,
        every,
        record_at,
        logscale,
        cum,
        cond,
        blow,
    ):
        for e in prange(X.shape[0]):
            if blow[e] < 0:
                blow[e] = member(
                    params,
                    X[e],
                    V[e],
                    SQ[e],
                    logscale[e],
                    U[min(np.int64(e), U.shape[0] - 1)],
                    t0,
                    t1,
                    transient,
                    steps,
                    every,
                    record_at,
                    cum[e],
                    cond[e : e + 1],
                )

    return chunk


@functools.cache
def twin_loop(step):
    """The twin loop of kernel ``step``: ``chunk(params, X, Y, U, t0, t1, transient, steps, every,
    separation, period, record_at, acc, cum, blow, widest)`` advances reference X and perturbed Y,
    renormalising ``|Y − X|`` to ``separation``; ``widest`` (E,) keeps the largest
    ``|Y − X| / max(1, |X|∞)`` at a renormalisation after the transient."""

    @cached_njit(loop_key("twin", (step,)), parallel=True, error_model="numpy")
    def chunk(
        params, X, Y, U, t0, t1, transient, steps, every, separation, period, record_at, acc, cum,
        blow, widest,
    ):  # fmt: skip
        E, n = X.shape
        for e in prange(E):
            if blow[e] >= 0:
                continue
            ue = np.int64(0) if U.shape[0] == 1 else np.int64(e)
            x, xn, y, yn, d = X[e].copy(), np.empty(n), Y[e].copy(), np.empty(n), np.empty(n)
            u, a, wide = np.empty(U.shape[2]), acc[e, 0], widest[e]
            ri = _first_record(record_at, max(t0 - transient, 0))
            for t in range(t0, t1):
                for i in range(U.shape[2]):
                    u[i] = U[ue, t, i]
                step(x, u, params, xn)
                step(y, u, params, yn)
                x[:] = xn
                y[:] = yn
                if not _renormalise_after(t, transient, steps, every):
                    continue
                dist2 = 0.0
                for i in range(n):
                    d[i] = y[i] - x[i]
                    if period > 0.0:
                        d[i] = (d[i] + 0.5 * period) % period - 0.5 * period
                    dist2 += d[i] * d[i]
                dist = math.sqrt(dist2)
                if not (_all_finite(x, n) and math.isfinite(dist) and dist > 0.0):
                    blow[e] = t + 1
                    break
                for i in range(n):
                    y[i] = x[i] + d[i] * (separation / dist)
                s = t + 1 - transient
                if s > 0:
                    a += math.log(dist / separation)
                    size = 1.0
                    for i in range(n):
                        size = max(size, abs(x[i]))
                    wide = max(wide, dist / size)
                    if ri < record_at.shape[0] and s == record_at[ri]:
                        cum[e, ri, 0] = a
                        ri += 1
            X[e], Y[e], acc[e, 0], widest[e] = x, y, a, wide

    return chunk


@functools.cache
def trajectory_loop(step, jacobian):
    """The trajectory loop of kernels ``step`` and ``jacobian``: ``chunk(params, U, t0, t1,
    first_jacobian, states, jacobians)`` runs steps ``t0 ≤ t < t1`` of every member,
    ``states[e, t+1] = f(states[e, t], u_t)`` and, for ``t ≥ first_jacobian``,
    ``jacobians[e, t − first_jacobian] = ∂f/∂x (states[e, t], u_t)``."""

    @cached_njit(loop_key("trajectory", (step, jacobian)), parallel=True, error_model="numpy")
    def chunk(params, U, t0, t1, first_jacobian, states, jacobians):
        for e in prange(states.shape[0]):
            ue = np.int64(0) if U.shape[0] == 1 else np.int64(e)
            u = np.empty(U.shape[2])
            for t in range(t0, t1):
                for i in range(U.shape[2]):
                    u[i] = U[ue, t, i]
                if t >= first_jacobian:
                    jacobian(states[e, t], u, params, jacobians[e, t - first_jacobian])
                step(states[e, t], u, params, states[e, t + 1])

    return chunk
