"""Nopython loops of :func:`lyapkit.trainers.group.train_group` on the CPU: one member per task.

The members of a group never mix, so each ``prange`` task runs one member's whole sequence: a
product per time step through SciPy's BLAS (one thread each, ``single_threaded_blas``) and the
step's elementwise work in the same compiled loop, with no interpreter or per-operation cost in
between. Eager torch spends about half of a grouped step on that cost (eight operations per time
step, each launched for all members); the equations and buffers are those of
``lyapkit.trainers.group._GroupLoop``, whose torch loop runs elsewhere (GPU) and checks these.

Float32 ``σ`` is Cephes' ``expf`` (degree-5 polynomial after ``e^x = 2^k e^r``, ``|r| ≤ ln2/2``),
vectorised by LLVM: at most 2 ulp from the correctly rounded value where that is a normal
number, as torch's own float32 ``sigmoid`` (which the single runs use); below (``z < −88``) it
is 0, where torch keeps subnormal values down to ``z ≈ −88.7`` (0 as well when denormals are
flushed, as in training). Float64 ``σ`` calls libm's ``exp``.

Every task runs in the caller's denormal mode: the task gives its thread's MXCSR the caller's
flush-to-zero and denormals-are-zero bits (set where the caller flushes denormals,
``torch.set_flush_denormal``, as ``Trainer`` does in its training steps; cleared otherwise, also
in worker threads that inherited them when they were created) and restores them after (x86-64;
elsewhere the tasks keep their threads' mode).
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from lyapkit.backends._numba_blas import _N, _T, _dgemm, _fortran_routine, single_threaded_blas
from lyapkit.backends._numba_cache import cached_njit, is_ready, loop_key

log = logging.getLogger(__name__)

_sgemm = _fortran_routine("blas", "sgemm", 13)
_FLUSH_BITS = 0x8040  # MXCSR: flush to zero (bit 15), denormals are zero (bit 6)
_X86 = platform.machine().lower() in {"x86_64", "amd64"}

_f32 = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _f32(1.44269504088896341), _f32(0.693359375), _f32(-2.12194440e-4)
_P0, _P1, _P2 = _f32(1.9875691500e-4), _f32(1.3981999507e-3), _f32(8.3334519073e-3)
_P3, _P4, _P5 = _f32(4.1665795894e-2), _f32(1.6666665459e-1), _f32(5.0000001201e-1)
_HALF, _ONE, _ZERO = _f32(0.5), _f32(1.0), _f32(0.0)
_LOW, _HIGH = _f32(-87.0), _f32(88.0)  # e^x stays normal; σ(z) = 0 for −z > 88


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _get_mxcsr(typingctx):
    """This thread's MXCSR (x86-64)."""

    def codegen(context, builder, signature, args):
        slot = builder.alloca(ir.IntType(32))
        address = builder.bitcast(slot, ir.IntType(8).as_pointer())
        fnty = ir.FunctionType(ir.VoidType(), [address.type])
        builder.call(builder.module.declare_intrinsic("llvm.x86.sse.stmxcsr", fnty=fnty), [address])
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _set_mxcsr(typingctx, value):
    """Set this thread's MXCSR to ``value`` (x86-64)."""

    def codegen(context, builder, signature, args):
        slot = builder.alloca(ir.IntType(32))
        builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
        address = builder.bitcast(slot, ir.IntType(8).as_pointer())
        fnty = ir.FunctionType(ir.VoidType(), [address.type])
        builder.call(builder.module.declare_intrinsic("llvm.x86.sse.ldmxcsr", fnty=fnty), [address])
        return context.get_dummy_value()

    return types.none(types.int64), codegen


if _X86:

    @njit(inline="always")
    def _denormal_mode():
        """The calling thread's flush-to-zero and denormals-are-zero bits."""
        return _get_mxcsr() & _FLUSH_BITS

    @njit(inline="always")
    def _enter(mode):
        """Give this thread the denormal bits ``mode`` (set or cleared); the state to restore."""
        before = _get_mxcsr()
        _set_mxcsr((before & ~_FLUSH_BITS) | mode)
        return before

    @njit(inline="always")
    def _leave(before):
        _set_mxcsr(before)

else:

    @njit(inline="always")
    def _denormal_mode():
        return 0

    @njit(inline="always")
    def _enter(mode):
        return 0

    @njit(inline="always")
    def _leave(before):
        pass


def _sigmoid(z):
    """``σ(z) = 1 / (1 + e^{−z})`` (nopython only)."""


@overload(_sigmoid, inline="always")
def _sigmoid_of(z):
    if z == types.float32:

        def sigmoid32(z):
            x = -z
            x = min(max(x, _LOW), _HIGH) if x == x else _ZERO
            k = np.floor(x * _LOG2E + _HALF)
            r = x - k * _LN2_HI - k * _LN2_LO
            p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
            e = (p * r * r + r + _ONE) * _float32_from_bits(
                (np.int32(k) + np.int32(127)) << np.int32(23)
            )
            s = _ONE / (_ONE + e) if -z <= _HIGH else _ZERO
            return s if z == z else z

        return sigmoid32
    return lambda z: 1.0 / (1.0 + math.exp(-z))


@njit(inline="always", error_model="numpy")
def _product(transpose_a, A, B, beta, C, chars, dims, scalars):
    """``C ← op(A) B + β C`` of row-major matrices (``op(A) = Aᵀ`` with ``transpose_a``), whose
    rows may be strided: BLAS sees ``Cᵀ = Bᵀ op(A)ᵀ`` in column-major order."""
    chars[0], chars[1] = _N, _T if transpose_a else _N
    dims[0], dims[1], dims[2] = C.shape[1], C.shape[0], B.shape[0]
    dims[3], dims[4], dims[5] = B.strides[0], A.strides[0], C.strides[0]
    for i in range(3, 6):
        dims[i] //= C.itemsize
    scalars[0], scalars[1] = 1.0, beta
    pointers = (
        chars[0:].ctypes, chars[1:].ctypes, dims[0:].ctypes, dims[1:].ctypes, dims[2:].ctypes,
        scalars[0:].ctypes, B.ctypes, dims[3:].ctypes, A.ctypes, dims[4:].ctypes,
        scalars[1:].ctypes, C.ctypes, dims[5:].ctypes,
    )  # fmt: skip
    if C.itemsize == 4:
        _sgemm(*pointers)
    else:
        _dgemm(*pointers)


def _forward(inputs, xs, weights, sigmoids, gamma2, tasks):
    """Forward pass of every member ``k`` (task ``k mod tasks``) from ``x_0 = 0``: the rows
    ``[x_t, s_{t+1}, 1]`` of ``xs[t, k]`` filled from ``inputs`` ``(T, M, B, m)`` (row ``T``:
    ``[x_T, 0, 0]``), then for ``t < T``, ``row = [x_t, s_{t+1}, 1] @ weights[k]`` ``(B, 2n)``,
    ``σ_t = σ(row[:, n:])`` into ``sigmoids[t, k]`` and ``x_{t+1} = row[:, :n] + 2γ ⊙ σ_t`` into
    ``xs[t + 1, k, :, :n]`` (``gamma2 = 2γ`` ``(M, n)``)."""
    steps, members, batch, n = sigmoids.shape
    m = inputs.shape[3]
    mode = _denormal_mode()
    for task in prange(tasks):
        before = _enter(mode)
        chars, dims = np.empty(2, np.uint8), np.empty(6, np.int32)
        scalars, row = np.empty(2, xs.dtype), np.empty((batch, 2 * n), xs.dtype)
        for k in range(np.int64(task), members, tasks):
            xs[0, k, :, :n] = 0.0
            xs[steps, k, :, n:] = 0.0
            for t in range(steps):
                xs[t, k, :, n : n + m] = inputs[t, k]
                xs[t, k, :, n + m] = 1.0
            for t in range(steps):
                _product(False, xs[t, k], weights[k], 0.0, row, chars, dims, scalars)
                for b in range(batch):
                    for j in range(n):
                        s = _sigmoid(row[b, n + j])
                        sigmoids[t, k, b, j] = s
                        xs[t + 1, k, b, j] = row[b, j] + gamma2[k, j] * s
        _leave(before)


def _backward(xs, sigmoids, RW, g_last, grad, tasks):
    """Backward pass of every member ``k`` (task ``k mod tasks``) from ``g_T = g_last[k]``: for
    ``t = T−1 … 0``, ``δ'_t = g_t ⊙ σ_t (1 − σ_t)``, ``grad[k] += δ'_tᵀ [x_t, s_{t+1}, 1]`` and
    ``g_{t−1} = [g_t, δ'_t] RW[k]`` with ``RW = [R; 4γ ⊙ W]`` ``(M, 2n, n)``: one product, as
    ``[g_t, δ'_t]`` are the two halves of one ``(B, 2n)`` buffer."""
    steps, members, batch, n = sigmoids.shape
    mode = _denormal_mode()
    for task in prange(tasks):
        before = _enter(mode)
        chars, dims, scalars = np.empty(2, np.uint8), np.empty(6, np.int32), np.empty(2, xs.dtype)
        current, following = np.empty((batch, 2 * n), xs.dtype), np.empty((batch, 2 * n), xs.dtype)
        for k in range(np.int64(task), members, tasks):
            current[:, :n] = g_last[k]
            grad[k] = 0.0
            for t in range(steps - 1, -1, -1):
                for b in range(batch):
                    for j in range(n):
                        s = sigmoids[t, k, b, j]
                        current[b, n + j] = (s - s * s) * current[b, j]
                _product(True, current[:, n:], xs[t, k], 1.0, grad[k], chars, dims, scalars)
                if t:
                    _product(False, current, RW[k], 0.0, following[:, :n], chars, dims, scalars)
                    current, following = following, current
        _leave(before)


def _compiled(loop: Callable, parallel: bool) -> Any:
    options = {"parallel": parallel, "error_model": "numpy", "fastmath": {"contract"}}
    return cached_njit(loop_key(loop.__name__, (), parallel), **options)(loop)


# On one thread, loops compiled without ``parallel``: no OpenMP team is started.
_LOOPS = {
    parallel: (_compiled(_forward, parallel), _compiled(_backward, parallel))
    for parallel in (False, True)
}


@contextlib.contextmanager
def _loops(threads: int, members: int) -> Iterator[tuple[Callable, Callable, int]]:
    """The forward and backward loops and their task count for ``threads`` threads, with numba's
    team that wide (idle members of a wider team would wait at its barriers, taking cores from
    other processes) and BLAS on one thread while inside. Numba's first thread setting in a
    process can also set the OpenMP thread count that torch reads (torch 2.13, numba 0.68):
    callers that use torch set theirs back."""
    tasks = max(1, min(threads, members, numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    try:
        if tasks > 1:
            numba.set_num_threads(tasks)
        with single_threaded_blas():
            yield (*_LOOPS[tasks > 1], tasks)
    finally:
        if numba.get_num_threads() != previous:
            numba.set_num_threads(previous)


def _notice(loop: Any) -> Any:
    """``loop``, logging first when calling it compiles it."""
    if not is_ready(loop):
        log.info(
            "compiling the grouped training loop %s (a few seconds, once: cached on disk)",
            loop.py_func.__name__,
        )
    return loop


def group_forward(
    inputs: np.ndarray,
    xs: np.ndarray,
    weights: np.ndarray,
    sigmoids: np.ndarray,
    gamma2: np.ndarray,
    threads: int,
) -> None:
    """:func:`_forward` on ``threads`` threads, one BLAS thread each."""
    with _loops(threads, xs.shape[1]) as (forward, _, tasks):
        _notice(forward)(inputs, xs, weights, sigmoids, gamma2, tasks)


def group_backward(
    xs: np.ndarray,
    sigmoids: np.ndarray,
    RW: np.ndarray,
    g_last: np.ndarray,
    grad: np.ndarray,
    threads: int,
) -> None:
    """:func:`_backward` on ``threads`` threads, one BLAS thread each."""
    with _loops(threads, xs.shape[1]) as (_, backward, tasks):
        _notice(backward)(xs, sigmoids, RW, g_last, grad, tasks)
