"""The numba backend's tangent loop for large bases: BLAS-3 products and CholeskyQR in nopython.

Scalar Gram–Schmidt (``lyapkit.backends._numba_loops``) costs ``O(n k²)`` scalar operations per step and
suits small maps; for RNN-sized bases the step is two BLAS-3 kernels instead. The loop calls the
BLAS and LAPACK that SciPy ships (``scipy.linalg.cython_blas`` / ``cython_lapack``) through their
C function pointers, so the whole loop stays compiled and pays no interpreter cost per step.

Tangent vectors are the rows of a C-contiguous ``V`` (k, n), i.e. the columns of the
column-major ``n × k`` matrix ``Q̃`` that BLAS sees. One step is ``Q̃ ← J Q̃`` (GEMM); a
re-orthonormalisation is CholeskyQR (SYRK, POTRF, TRSM), a second pass or Householder QR (GEQRF,
ORGQR) as ``lyapkit.backends._cholesky_qr`` decides.

At these sizes (k ≈ 100) a BLAS call gains nothing from a second thread and loses much to the
synchronisation (OpenBLAS, 2 cores: 216 µs per step of a 128-unit network with one thread,
270–360 µs with two), so the backend limits BLAS to one thread (``threadpoolctl``) while the loop
runs, and members run in parallel (``prange``).
"""

import functools
import math

import llvmlite.binding as llvm
import numpy as np
from numba import njit, prange, types
from numba.extending import get_cython_function_address
from threadpoolctl import ThreadpoolController

from lyapkit.backends._cholesky_qr import (
    HOUSEHOLDER,
    ONE_PASS,
    TWO_PASSES,
    max_norm_deviation,
    one_pass_min_sine2,
    two_pass_min_sine2,
)
from lyapkit.backends._numba_cache import cached_njit, loop_key
from lyapkit.backends._numba_loops import _all_finite, _first_record, _renormalise_after


def _fortran_routine(library: str, name: str, n_args: int):
    """SciPy's BLAS/LAPACK routine ``name`` (every argument passed by pointer, returns nothing),
    called by symbol name: the process registers the symbol's address with LLVM, so the compiled
    code holds no address and numba can cache it on disk."""
    symbol = f"lyapkit_{library}_{name}"
    llvm.add_symbol(symbol, get_cython_function_address(f"scipy.linalg.cython_{library}", name))
    return types.ExternalFunction(symbol, types.void(*(types.voidptr,) * n_args))


_dgemm = _fortran_routine("blas", "dgemm", 13)
_dsyrk = _fortran_routine("blas", "dsyrk", 10)
_dtrsm = _fortran_routine("blas", "dtrsm", 11)
_dtrmm = _fortran_routine("blas", "dtrmm", 11)
_dtrtri = _fortran_routine("lapack", "dtrtri", 6)
_dpotrf = _fortran_routine("lapack", "dpotrf", 5)
_dgeqrf = _fortran_routine("lapack", "dgeqrf", 8)
_dorgqr = _fortran_routine("lapack", "dorgqr", 9)


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # after SciPy's BLAS is loaded, by the imports above


def single_threaded_blas():
    """Context manager: BLAS libraries limited to one thread (for :func:`tangent_chunk`)."""
    return _threadpools().limit(limits=1, user_api="blas")


_EPS = float(np.finfo(np.float64).eps)
_ONE_PASS_MIN_SINE2 = one_pass_min_sine2(_EPS)
_two_pass_min_sine2 = njit(two_pass_min_sine2)
_MAX_NORM_DEVIATION = max_norm_deviation(_EPS)
_TINY_NORM2, _HUGE_NORM2 = 2.0**-600, 2.0**600
_CHOLESKY_BLOCK, _SOLVE_BLOCK = 64, 32
_N, _T, _U, _L, _R = (ord(c) for c in "NTULR")  # BLAS's character arguments

# Thin wrappers: column-major BLAS/LAPACK semantics, arrays passed as (flat) views whose first
# element is the matrix's first element.


@njit(error_model="numpy")
def _gemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """``C ← α op(A) op(B) + β C``."""
    c = np.array([transa, transb], dtype=np.int8)
    d = np.array([m, n, k, lda, ldb, ldc], dtype=np.int32)
    s = np.array([alpha, beta])
    _dgemm(
        c[0:].ctypes, c[1:].ctypes, d[0:].ctypes, d[1:].ctypes, d[2:].ctypes, s[0:].ctypes,
        A.ctypes, d[3:].ctypes, B.ctypes, d[4:].ctypes, s[1:].ctypes, C.ctypes, d[5:].ctypes,
    )  # fmt: skip


@njit(error_model="numpy")
def _syrk(uplo, trans, n, k, alpha, A, lda, beta, C, ldc):
    """One triangle of ``C ← α op(A) op(A)ᵀ + β C``."""
    c = np.array([uplo, trans], dtype=np.int8)
    d = np.array([n, k, lda, ldc], dtype=np.int32)
    s = np.array([alpha, beta])
    _dsyrk(
        c[0:].ctypes, c[1:].ctypes, d[0:].ctypes, d[1:].ctypes, s[0:].ctypes, A.ctypes,
        d[2:].ctypes, s[1:].ctypes, C.ctypes, d[3:].ctypes,
    )  # fmt: skip


@njit(error_model="numpy")
def _triangular(routine, side, uplo, transa, m, n, alpha, A, lda, B, ldb):
    """TRSM (``B ← α op(A)⁻¹ B`` or ``α B op(A)⁻¹``) or TRMM (``B ← α op(A) B`` or ``α B op(A)``),
    ``routine`` chosen among the two; A triangular, non-unit."""
    c = np.array([side, uplo, transa, _N], dtype=np.int8)
    d = np.array([m, n, lda, ldb], dtype=np.int32)
    s = np.array([alpha])
    routine(
        c[0:].ctypes, c[1:].ctypes, c[2:].ctypes, c[3:].ctypes, d[0:].ctypes, d[1:].ctypes,
        s.ctypes, A.ctypes, d[2:].ctypes, B.ctypes, d[3:].ctypes,
    )  # fmt: skip


@njit(error_model="numpy")
def _trsm(side, uplo, transa, m, n, alpha, A, lda, B, ldb):
    _triangular(_dtrsm, side, uplo, transa, m, n, alpha, A, lda, B, ldb)


@njit(error_model="numpy")
def _trmm(side, uplo, transa, m, n, alpha, A, lda, B, ldb):
    _triangular(_dtrmm, side, uplo, transa, m, n, alpha, A, lda, B, ldb)


@njit(error_model="numpy")
def _trtri(n, A, lda):
    """Inverse of an upper triangular matrix in place; LAPACK's info."""
    c = np.array([_U, _N], dtype=np.int8)
    d = np.array([n, lda, 0], dtype=np.int32)
    _dtrtri(c[0:].ctypes, c[1:].ctypes, d[0:].ctypes, A.ctypes, d[1:].ctypes, d[2:].ctypes)
    return d[2]


@njit(error_model="numpy")
def _potrf(n, A, lda):
    """Upper Cholesky factor in place; LAPACK's info."""
    c = np.array([_U], dtype=np.int8)
    d = np.array([n, lda, 0], dtype=np.int32)
    _dpotrf(c.ctypes, d[0:].ctypes, A.ctypes, d[1:].ctypes, d[2:].ctypes)
    return d[2]


@njit(error_model="numpy")
def tangent_product(J, V, out):
    """``out = V Jᵀ`` (rows of V are tangent vectors), i.e. ``Q̃ ← J Q̃``."""
    k, n = V.shape
    _gemm(_T, _N, n, k, n, 1.0, J, n, V, n, 0.0, out, n)


@njit(error_model="numpy")
def _cholesky(G):
    """Blocked Cholesky ``A = UᵀU`` of the column-major upper triangle held in ``G``, in place;
    return LAPACK's info (0, or the first column that is not positive definite).

    OpenBLAS's POTRF at k = 128 takes about twice as long as on blocks of 64 with the trailing
    update by SYRK; this is the same right-looking algorithm with blocks of ``_CHOLESKY_BLOCK``.
    """
    k = G.shape[0]
    A = G.reshape(-1)  # column-major element (i, j) at i + j k
    for p0 in range(0, k, _CHOLESKY_BLOCK):
        p1 = min(p0 + _CHOLESKY_BLOCK, k)
        b, rest = p1 - p0, k - p1
        info = _potrf(b, A[p0 + p0 * k :], k)
        if info != 0:
            return p0 + info
        if rest:  # U₁₂ = U₁₁⁻ᵀ A₁₂, then A₂₂ ← A₂₂ − U₁₂ᵀ U₁₂
            _trsm(_L, _U, _T, b, rest, 1.0, A[p0 + p0 * k :], k, A[p0 + p1 * k :], k)
            _syrk(_U, _T, rest, b, -1.0, A[p0 + p1 * k :], k, 1.0, A[p1 + p1 * k :], k)
    return 0


@njit(error_model="numpy")
def _gram(V, G, scale):
    """``G ← Q̃ᵀQ̃`` (upper triangle); rows whose squared norms leave ``[2⁻⁶⁰⁰, 2⁶⁰⁰]`` (rare) are
    first scaled by exact powers of two, recorded in ``scale``, so that ``G`` neither under- nor
    overflows. Return the squared row norms."""
    k, n = V.shape
    _syrk(_U, _T, k, n, 1.0, V, n, 0.0, G, k)
    norm2 = np.empty(k)
    for i in range(k):
        norm2[i] = G[i, i]
    scale[:] = 1.0
    if norm2.min() > _TINY_NORM2 and norm2.max() < _HUGE_NORM2:
        return norm2
    for i in range(k):
        largest = np.abs(V[i]).max()
        exponent = math.frexp(largest)[1] if 0.0 < largest < np.inf else 0
        scale[i] = math.ldexp(1.0, exponent)
        V[i] *= math.ldexp(1.0, -exponent)
    _syrk(_U, _T, k, n, 1.0, V, n, 0.0, G, k)
    for i in range(k):
        norm2[i] = G[i, i]
    return norm2


@njit(error_model="numpy")
def _cholesky_pass(V, G, r):
    """One CholeskyQR pass on the rows of ``V``, in place; return the first row whose pass is not
    accurate enough (``k`` when every row is), or −1 when the factorisation failed or cannot be
    trusted (``V`` then holds garbage). On success ``V ← Q``, ``G ← U`` and ``r ← r · diag R``."""
    k, n = V.shape
    scale = np.empty(k)
    sine2 = _gram(V, G, scale)
    if _cholesky(G) != 0:
        return -1
    for i in range(k):
        sine2[i] = G[i, i] * G[i, i] / sine2[i]
    if not sine2.min() > _two_pass_min_sine2(_EPS, k):
        return -1
    for i in range(k):
        r[i] *= G[i, i] * scale[i]
    _solve_upper(V, G)
    for i in range(k):
        if not (sine2[i] > _ONE_PASS_MIN_SINE2 and abs(V[i] @ V[i] - 1.0) <= _MAX_NORM_DEVIATION):
            return i
    return k


@njit(error_model="numpy")
def _solve_upper(V, G):
    """``Q̃ ← Q̃ U⁻¹``, ``U`` the factor left in ``G`` by :func:`_cholesky_pass`.

    Blocked by ``_SOLVE_BLOCK`` columns: ``Q_j = (Q̃_j − Q_{<j} U_{<j,j}) U_jj⁻¹`` with the
    diagonal blocks inverted explicitly (TRTRI) and applied by TRMM, so almost all the work is
    GEMM — about twice as fast as OpenBLAS's TRSM at k = 128.
    """
    k, n = V.shape
    U, Q = G.reshape(-1), V.reshape(-1)  # column-major U (k × k) and Q̃ (n × k)
    inverse = np.empty((_SOLVE_BLOCK, _SOLVE_BLOCK))
    for p0 in range(0, k, _SOLVE_BLOCK):
        p1 = min(p0 + _SOLVE_BLOCK, k)
        b = p1 - p0
        if p0:
            _gemm(_N, _N, n, b, p0, -1.0, Q, n, U[p0 * k :], k, 1.0, Q[p0 * n :], n)
        D = inverse[:b, :b].copy()  # contiguous b × b: U_jj, then its inverse
        for j in range(b):
            for i in range(j + 1):
                D[j, i] = G[p0 + j, p0 + i]
        _trtri(b, D, b)
        _trmm(_R, _U, _N, n, b, 1.0, D, b, Q[p0 * n :], n)


@njit(error_model="numpy")
def _householder(V, r):
    """Householder QR in place (GEQRF then ORGQR): ``V ← Q``, ``r ← r · |diag R|``, with the signs
    of Q's rows chosen so that ``diag R ≥ 0``."""
    k, n = V.shape
    tau, lwork = np.empty(k), 64 * k
    work = np.empty(lwork)
    d = np.array([n, k, lwork, 0], dtype=np.int32)
    _dgeqrf(
        d[0:].ctypes, d[1:].ctypes, V.ctypes, d[0:].ctypes, tau.ctypes, work.ctypes, d[2:].ctypes,
        d[3:].ctypes,
    )  # fmt: skip
    sign = np.empty(k)
    for i in range(k):
        sign[i] = 1.0 if V[i, i] >= 0.0 else -1.0
        r[i] *= abs(V[i, i])
    _dorgqr(
        d[0:].ctypes, d[1:].ctypes, d[1:].ctypes, V.ctypes, d[0:].ctypes, tau.ctypes,
        work.ctypes, d[2:].ctypes, d[3:].ctypes,
    )  # fmt: skip
    for i in range(k):
        for a in range(n):
            V[i, a] *= sign[i]


@njit(error_model="numpy")
def orthonormalise(V, G, r):
    """Factor the rows of ``V`` in place: ``V ← Q``, ``r ← diag R ≥ 0``; return which method was
    used (``ONE_PASS``, ``TWO_PASSES`` or ``HOUSEHOLDER``; ``lyapkit.backends._cholesky_qr``)."""
    k, n = V.shape
    original = V.copy()
    r[:] = 1.0
    first = _cholesky_pass(V, G, r)
    if first == k:
        return ONE_PASS
    if first >= 0:
        # Second pass on the trailing rows: project out the leading ones, then CholeskyQR.
        m, lead, tail = k - first, V[:first], V[first:]
        if first:
            C = np.empty((m, first))
            _gemm(_T, _N, first, m, n, 1.0, lead, n, tail, n, 0.0, C, first)
            _gemm(_N, _N, n, m, first, -1.0, lead, n, C, first, 1.0, tail, n)
        if _cholesky_pass(tail, np.empty((m, m)), r[first:]) == m:
            return TWO_PASSES
    V[:] = original
    r[:] = 1.0
    _householder(V, r)
    return HOUSEHOLDER


@functools.cache
def tangent_loop(step, jacobian):
    """The tangent loop of kernels ``step`` and ``jacobian``: ``chunk`` with the arguments of the
    loop of ``lyapkit.backends._numba_loops.tangent_loop``, advancing every member from step t0 to
    t1, members in parallel. Call it with BLAS limited to one thread.

    Rows of ``V`` are orthonormal after every re-orthonormalisation, so ``SQ`` stays 1 and
    ``logscale`` holds ``Σ log R_ii`` since the end of the transient; ``cond`` holds the largest
    ``max R_ii / min R_ii`` seen. A collapsed direction (``R_ii = 0``: CholeskyQR fails on a
    rank-deficient basis and Householder QR completes it) adds ``−inf`` to its sum and is no
    blow-up.
    """

    @njit(error_model="numpy")
    def member(params, x, V, ls, U, t0, t1, transient, steps, every, record_at, cum, cond):
        """Advance one member in place (state ``x``, rows ``V``, ``Σ log R_ii`` in ``ls``);
        return the step after which it blew up, or −1."""
        k, n = V.shape
        xn, u, J = np.empty(n), np.empty(U.shape[1]), np.empty((n, n))
        G, r, v, vn = np.empty((k, k)), np.empty(k), V.copy(), np.empty((k, n))
        worst, blown = cond[0], -1
        ri = _first_record(record_at, max(t0 - transient, 0))
        for t in range(t0, t1):
            u[:] = U[t]
            jacobian(x, u, params, J)
            step(x, u, params, xn)
            x[:] = xn
            tangent_product(J, v, vn)
            v, vn = vn, v
            if not _renormalise_after(t, transient, steps, every):
                continue
            orthonormalise(v, G, r)
            if not (_all_finite(x, n) and _all_finite(r, k) and r.min() > 0.0):
                if not (_all_finite(x, n) and _all_finite(r, k)):
                    blown = t + 1
                    break
                # Rare: some R_ii = 0, a direction collapsed (Householder completed the basis);
                # its log R_ii is −inf and this step is left out of the condition estimate.
            else:
                worst = max(worst, r.max() / r.min())
            if t + 1 == transient:  # start averaging from here
                ls[:] = 0.0
            elif t + 1 > transient:
                for i in range(k):
                    ls[i] += math.log(r[i])  # log 0 = −inf (error_model="numpy")
                if ri < record_at.shape[0] and t + 1 - transient == record_at[ri]:
                    cum[ri] = ls
                    ri += 1
        V[:] = v
        cond[0] = worst
        return blown

    @cached_njit(loop_key("tangent_blas", (step, jacobian)), parallel=True, error_model="numpy")
    def chunk(
        params, X, V, SQ, U, t0, t1, transient, steps, every, record_at, logscale, cum, cond, blow
    ):
        for e in prange(X.shape[0]):
            if blow[e] < 0:
                blow[e] = member(
                    params,
                    X[e],
                    V[e],
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
