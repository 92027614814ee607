"""The numba backend: the whole tangent loop in nopython mode, ``prange`` over ensemble members.

For small bases (``n² k < BLAS_MIN_WORK``) a step evaluates the map's jitted kernels, maps the tangent
vectors with explicit loops and re-orthogonalises them with unnormalised modified Gram–Schmidt
(``lyapkit.backends._numba_loops``): for the small bases of low-dimensional maps a hand-written kernel
specialised on the dimension is far cheaper than a LAPACK call, and no logarithm is taken per
step. For larger ones the loop calls BLAS and LAPACK for the tangent product and
CholeskyQR (``lyapkit.backends._numba_blas``). A loop compiles once for each map's kernels
(and, for the small-map loop, each ``(n, k)``), several seconds, and is then loaded from numba's
disk cache by later processes (``lyapkit.backends._numba_cache``).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from lyapkit.backend import (
    Backend,
    BackendError,
    CovariantPlan,
    CovariantRecord,
    GGNPlan,
    Progress,
    TangentPlan,
    TangentRecord,
    TrajectoryPlan,
    TrajectoryRecord,
)
from lyapkit.maps.base import Map, NumbaKernels

#: ``n² k`` (state dimension n, k exponents) from which BLAS calls beat the scalar loop: one
#: trajectory of a tanh network, 2 cores, µs per step scalar / BLAS: n = 16, k = 16: 4.9 / 5.6;
#: n = 24, k = 16: 7.2 / 6.2; n = 32, k = 8: 4.5 / 4.7; n = 64, k = 4: 8.9 / 6.5; n = 128, k = 1:
#: 15 / 12. A full spectrum goes to BLAS from 21 dimensions on, one exponent from 91.
BLAS_MIN_WORK = 2**13
#: Start-up of a loop, in seconds on 2 cores: loading it from numba's disk cache (numba's import
#: included), or compiling it (scalar loop, BLAS loop); and the run's speed-up over the numpy
#: backend's cost model, which is ≥ 20 for every map measured (benchmarks/).
LOAD_SECONDS, COMPILE_SECONDS, NUMPY_SPEED_UP = 0.5, {False: 8.0, True: 12.0}, 20.0
_CHUNKS = 100  # progress granularity when a progress bar is shown
_DENSE_BLOCK = 2**22  # float64 entries of output Jacobians held at once by the dense GGN (32 MiB)


def _chunks(total: int, progress: Progress) -> list[tuple[int, int]]:
    size = max(1, -(-total // _CHUNKS)) if progress.enabled else total
    return [(t, min(t + size, total)) for t in range(0, total, size)]


def _tangent_loop(kernels: NumbaKernels, n: int, k: int):
    """The tangent loop of ``kernels`` for ``k`` vectors in ``n`` dimensions and a factory of the
    context to run it in: scalar Gram–Schmidt specialised on ``(n, k)`` for small bases; from
    ``n² k ≥ BLAS_MIN_WORK`` on, BLAS-3 products and CholeskyQR with BLAS on one thread."""
    if n * n * k >= BLAS_MIN_WORK:
        from lyapkit.backends._numba_blas import single_threaded_blas, tangent_loop

        return tangent_loop(kernels.step, kernels.jacobian), single_threaded_blas
    from lyapkit.backends._numba_loops import tangent_loop

    return tangent_loop(kernels.step, kernels.jacobian, n, k), contextlib.nullcontext


def _typing_summary(message: str) -> str:
    """The gist of a numba typing error: what failed, the signature tried and where."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    what = next((line for line in lines if not line.startswith("Failed in")), "typing error")
    signature = next((line[3:].strip() for line in lines if line.startswith(">>>")), None)
    where = next((line[8:] for line in lines if line.startswith("During: typing of")), None)
    return (
        what.rstrip(":") + (f" {signature}" if signature else "") + (f" ({where})" if where else "")
    )


def _compile_errors(method):
    """``method`` with numba's typing errors (kernels that do not compile for the types of their
    parameters or state) raised as a one-paragraph BackendError naming the map; numba's full
    message stays in the chained exception."""

    @functools.wraps(method)
    def checked(self, system: Map, *args, **kwargs):
        from numba.core.errors import TypingError

        try:
            return method(self, system, *args, **kwargs)
        except TypingError as err:
            types = ", ".join(type(p).__name__ for p in system.numba_kernels().params)
            raise BackendError(
                f"{system.name}: numba cannot compile the map's kernels with parameters of types "
                f"({types}): {_typing_summary(str(err))}; check the kernels and their params "
                "(floats and float64 arrays), or use backend='numpy'"
            ) from err

    return checked


class NumbaBackend(Backend):
    """Numba-jitted backend for maps that provide numba kernels (built-in maps, ``from_numba``)."""

    name = "numba"
    description = "numba nopython loops, parallel over ensemble members (float64, CPU)"
    requires = ("numba", "threadpoolctl")
    extra = "numba"

    def supports(self, system: Map) -> bool:
        return system.numba_kernels() is not None

    def priority(self, system: Map) -> int:
        return 1

    def estimated_seconds(self, system: Map, plan: TangentPlan) -> float:
        """Compilation (unless the loop is compiled in this process or cached on disk) plus the
        run, about ``NUMPY_SPEED_UP`` times faster than the numpy backend's cost model."""
        from lyapkit.backends._numba_cache import is_ready
        from lyapkit.backends._numba_loops import twin_loop
        from lyapkit.backends.numpy_backend import numpy_seconds

        kernels, (n, k) = system.numba_kernels(), plan.basis0.shape[1:]
        twin = plan.separation > 0
        loop = twin_loop(kernels.step) if twin else _tangent_loop(kernels, n, k)[0]
        blas = n * n * k >= BLAS_MIN_WORK and not twin
        start = LOAD_SECONDS if is_ready(loop) else COMPILE_SECONDS[blas]
        return start + numpy_seconds(system, plan) / NUMPY_SPEED_UP

    DTYPES, DEVICES = (None, "float64"), (None, "cpu")

    def accepts(self, dtype: str | None, device: str | None) -> bool:
        return dtype in self.DTYPES and device in self.DEVICES

    def _check(self, plan: TangentPlan | TrajectoryPlan) -> None:
        if plan.dtype not in self.DTYPES:
            raise BackendError(f"the numba backend computes in float64, got dtype={plan.dtype!r}")
        if plan.device not in self.DEVICES:
            raise BackendError(
                f"the numba backend runs on the CPU only, got device={plan.device!r}"
            )

    @staticmethod
    def _outputs(plan: TangentPlan, k: int):
        E = plan.x0.shape[0]
        return (
            np.zeros((E, k)),
            np.full((E, len(plan.record_at), k), np.nan),
            np.zeros(E),
            np.full(E, -1, dtype=np.int64),
        )

    @_compile_errors
    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        self._check(plan)
        kernels = system.numba_kernels()
        X = np.array(plan.x0, dtype=np.float64)
        V = np.ascontiguousarray(np.swapaxes(plan.basis0, -1, -2), dtype=np.float64)
        SQ = np.ones(V.shape[:2])
        U = np.ascontiguousarray(plan.inputs, dtype=np.float64)
        record_at = np.asarray(plan.record_at, dtype=np.int64)
        logscale, cum, _, blow = self._outputs(plan, V.shape[1])
        cond = np.ones(len(X))  # max R_ii / min R_ii >= 1 (steps with a collapse are left out)
        chunk, context = _tangent_loop(kernels, system.dim, V.shape[1])
        scalar = system.dim * system.dim * V.shape[1] < BLAS_MIN_WORK
        fixed = (plan.transient, plan.steps, plan.every, record_at)
        with context():
            for t0, t1 in _chunks(plan.total, progress):
                chunk(kernels.params, X, V, SQ, U, t0, t1, *fixed, logscale, cum, cond, blow)
                if scalar:
                    self._suspect_rows(kernels, fixed, X, V, SQ, U, t1, logscale, cum, cond, blow)
                progress.update(t1 - t0)
        with np.errstate(all="ignore"):  # members that blew up have SQ = 0: NaN basis
            basis = np.swapaxes(V / np.sqrt(SQ)[..., None], -1, -2)
        return TangentRecord(cum, cond, blow, X, basis)

    @staticmethod
    def _suspect_rows(kernels, fixed, X, V, SQ, U, t1, logscale, cum, cond, blow) -> None:
        """The rare path of the scalar loop: members that it stopped at a suspect row (a tangent
        vector that may have collapsed: ``blow`` set, state and ``SQ`` finite, an ``SQ``
        negative) get that step completed by ``_finish`` and go on to ``t1`` in the robust loop,
        which checks such rows in place (compiled when first needed)."""
        from lyapkit.backends._numba_loops import finisher, tangent_loop

        transient, _, _, record_at = fixed
        k, n = V.shape[1:]
        stopped = (blow > 0) & np.isfinite(X).all(-1) & np.isfinite(SQ).all(-1)
        for e in np.flatnonzero(stopped & (SQ < 0).any(-1)):
            t = int(blow[e]) - 1
            blow[e] = finisher()(V[e], SQ[e], logscale[e], t, transient, record_at, cum[e])
            if blow[e] < 0 and t + 1 < t1:
                robust = tangent_loop(kernels.step, kernels.jacobian, n, k, True)
                u = min(e, U.shape[0] - 1)
                robust(
                    kernels.params, X[e : e + 1], V[e : e + 1], SQ[e : e + 1], U[u : u + 1],
                    t + 1, t1, *fixed, logscale[e : e + 1], cum[e : e + 1], cond[e : e + 1],
                    blow[e : e + 1],
                )  # fmt: skip

    @_compile_errors
    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        from lyapkit.backends._numba_loops import twin_loop

        self._check(plan)
        kernels = system.numba_kernels()
        twin_chunk = twin_loop(kernels.step)
        X = np.array(plan.x0, dtype=np.float64)
        Y = X + plan.separation * plan.basis0[..., 0]
        U = np.ascontiguousarray(plan.inputs, dtype=np.float64)
        record_at = np.asarray(plan.record_at, dtype=np.int64)
        period = float(system.period) if system.period is not None else 0.0
        acc, cum, widest, blow = self._outputs(plan, 1)  # widest: max d / max(1, |x|∞)
        cond = np.ones(len(X))  # one vector: perfectly conditioned
        for t0, t1 in _chunks(plan.total, progress):
            twin_chunk(
                kernels.params,
                X,
                Y,
                U,
                t0,
                t1,
                plan.transient,
                plan.steps,
                plan.every,
                plan.separation,
                period,
                record_at,
                acc,
                cum,
                blow,
                widest,
            )
            progress.update(t1 - t0)
        d = Y - X
        if system.period is not None:
            d = (d + period / 2) % period - period / 2
        basis = (d / np.linalg.norm(d, axis=-1, keepdims=True))[..., None]
        return TangentRecord(cum, cond, blow, X, basis, max_separation=widest)

    @_compile_errors
    def trajectory(self, system: Map, plan: TrajectoryPlan, progress: Progress) -> TrajectoryRecord:
        from lyapkit.backends._numba_loops import trajectory_loop

        self._check(plan)
        kernels = system.numba_kernels()
        trajectory_chunk = trajectory_loop(kernels.step, kernels.jacobian)
        E, n = plan.x0.shape
        states = np.empty((E, plan.steps + 1, n))
        states[:, 0] = plan.x0
        jacobians = np.empty((E, plan.steps - plan.first_jacobian, n, n))
        U = np.ascontiguousarray(plan.inputs, dtype=np.float64)
        for t0, t1 in _chunks(plan.steps, progress):
            trajectory_chunk(
                kernels.params,
                U,
                t0,
                t1,
                plan.first_jacobian,
                states,
                jacobians,
            )
            progress.update(t1 - t0)
        return TrajectoryRecord(states=states, jacobians=jacobians)

    @_compile_errors
    def covariant(self, system: Map, plan: CovariantPlan, progress: Progress) -> CovariantRecord:
        """Ginelli's method in two nopython loops (``lyapkit.backends._numba_clv``): the forward
        pass in chunks (for the progress bar), then the backward pass, both pipelined over two
        threads per member when there are fewer members than threads."""
        import numba

        from lyapkit.backends._numba_clv import backward_loop, block_size, forward_loop

        self._check(plan)
        kernels = system.numba_kernels()
        (E, n, k), K = plan.basis0.shape, len(plan.keep)
        forward = forward_loop(kernels.step, kernels.jacobian, n, k)
        X = np.array(plan.x0, dtype=np.float64)
        Q = np.ascontiguousarray(np.swapaxes(plan.basis0, -1, -2), dtype=np.float64)
        U = np.ascontiguousarray(plan.inputs, dtype=np.float64)
        keep = np.asarray(plan.keep, dtype=np.int64)
        # np.full, not np.zeros or np.empty: the pages are touched here, on one thread, before the
        # pipelined loop, where first-touch page faults made it up to 3x slower (10⁵ steps of a
        # 6-dimensional map: 40 ms on touched pages, 50-160 ms on fresh ones).
        factors = np.full((E, plan.steps + plan.tail, k * (k + 1) // 2), 0.0)  # triangles
        # a member that blows up leaves later entries unwritten: its bases are NaN-ed backwards
        bases, states = np.full((E, K, k, n), np.nan), np.full((E, K, n), np.nan)
        blow = np.full(E, -1, dtype=np.int64)
        B = block_size(E, n)
        Js, xs, stops = np.empty((E, 2, B, n, n)), np.empty((E, 2, B, n)), np.full((E, 2), -1)
        pipelined = E < numba.get_num_threads()  # spare threads run the state chains ahead
        for t0, t1 in _chunks(plan.total, progress):
            forward(
                kernels.params, X, Q, U, t0, t1, plan.transient, keep, factors, bases, states,
                blow, Js, xs, stops, pipelined,
            )  # fmt: skip
            progress.update(t1 - t0)
        C = np.ascontiguousarray(plan.coefficients0, dtype=np.float64)
        log_stretch = np.zeros((E, k))
        backward_loop(n, k)(
            factors, C, keep, blow, bases, block_size(E, k), pipelined, plan.steps, log_stretch
        )
        log_stretch[blow >= 0] = np.nan  # the backward pass skips the members that blew up
        return CovariantRecord(np.swapaxes(bases, -1, -2), states, log_stretch, blow)

    @_compile_errors
    def ggn(self, system: Map, plan: GGNPlan, vectors: np.ndarray | None = None) -> np.ndarray:
        from lyapkit.backends._numba_sensitivity import products_loop, sensitivity_loop

        kernels = system.numba_kernels()
        if not kernels.has_parameter_kernels:
            raise BackendError(
                f"the numba kernels of {system!r} have no parameter-Jacobian kernels; use "
                "backend='numpy' for its GGN products"
            )
        codes = np.array([system.jacobian_parameters.index(p) for p in plan.parameters])
        X, U = np.array(plan.x0), np.ascontiguousarray(plan.inputs)
        C, c, E, o = plan.readout, plan.readout_bias, X.shape[0], plan.readout.shape[0]
        if vectors is not None:
            Vt = np.ascontiguousarray(vectors.T)
            out = np.zeros((E,) + Vt.shape)
            products_loop(
                kernels.step, kernels.jacobian, kernels.parameter_jvp, kernels.parameter_vjp
            )(
                kernels.params,
                codes,
                X,
                U,
                Vt,
                C,
                c,
                plan.loss == "cross_entropy",
                plan.all_outputs,
                1.0 / plan.terms,
                out,
            )
            return out.sum(0).T
        # Dense: the output Jacobians of a window of steps at a time, then one GEMM per window.
        T, P = plan.steps, plan.size
        S, G = np.zeros(X.shape + (P,)), np.zeros((P, P))
        window = max(1, _DENSE_BLOCK // (E * o * P)) if plan.all_outputs else T
        for t0 in range(0, T, window):
            t1 = min(t0 + window, T)
            r = t1 - t0 if plan.all_outputs else int(t1 == T)
            A, Y = np.empty((E, r, o, P)), np.empty((E, r, o))
            sensitivity_loop(kernels.step, kernels.jacobian, kernels.parameter_jacobian)(
                kernels.params,
                codes,
                X,
                S,
                U,
                t0,
                t1,
                C,
                c,
                plan.all_outputs,
                A,
                Y,
            )
            G += A.reshape(-1, P).T @ plan.output_curvature(Y, A).reshape(-1, P)
        return G
