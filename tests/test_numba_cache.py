"""The numba backend's loops on numba's disk cache: hits from the second process on, never stale,
and ``backend="auto"`` that does not compile what a short run cannot earn back.

Processes are real (``subprocess``), each with its own ``NUMBA_CACHE_DIR`` so that nothing from
other tests is reused."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lyapkit as lk

pytest.importorskip("numba")

# Every loop of the backend: scalar tangent (Hénon), twin, trajectory (variational term), the BLAS
# tangent loop (24 units: n²k ≥ BLAS_MIN_WORK), GGN products and the dense sensitivity sweep.
EVERY_LOOP = """
import json
import numpy as np
import lyapkit as lk
from lyapkit.backends import _numba_blas, _numba_loops, _numba_sensitivity
from lyapkit.maps import numba_kernels as nk

rng = np.random.default_rng(0)
henon = lk.Henon()
qr = lk.lyapunov_spectrum(henon, steps=300, transient=10, backend="numba", seed=0)
twin = lk.max_lyapunov_twin(henon, steps=300, backend="numba", seed=0)
term = lk.variational_term(henon, [0.1, 0.1], stop=50, backend="numba")
n = 24
R, W = 0.9 * np.eye(n), rng.standard_normal((n, n)) / n**0.5
wcrnn = lk.WCRNNMap(R, W, 0.1, V=rng.standard_normal((n, 1)))
blas = lk.lyapunov_spectrum(wcrnn, steps=100, transient=10, inputs=rng.standard_normal((110, 1)),
                            backend="numba", seed=0)
ggn = lk.map_ggn(wcrnn, rng.standard_normal((2, n)), rng.standard_normal((2, 5, 1)),
                 rng.standard_normal((3, n)), backend="numba")
products, dense = ggn.matmat(np.ones((ggn.num_params, 2))), ggn.dense()
loops = {
    "tangent": _numba_loops.tangent_loop(nk.henon_step, nk.henon_jacobian, 2, 2),
    "twin": _numba_loops.twin_loop(nk.henon_step),
    "trajectory": _numba_loops.trajectory_loop(nk.henon_step, nk.henon_jacobian),
    "tangent_blas": _numba_blas.tangent_loop(nk.wcrnn_step, nk.wcrnn_jacobian),
    "ggn_products": _numba_sensitivity.products_loop(
        nk.wcrnn_step, nk.wcrnn_jacobian, nk.wcrnn_parameter_jvp, nk.wcrnn_parameter_vjp),
    "sensitivity": _numba_sensitivity.sensitivity_loop(
        nk.wcrnn_step, nk.wcrnn_jacobian, nk.wcrnn_parameter_jacobian),
}
print(json.dumps({
    "stats": {name: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
              for name, d in loops.items()},
    "results": [qr.exponents.tolist(), twin.exponents.tolist(), term.log_singular_values.tolist(),
                blas.exponents.tolist(), products.tolist(), dense.sum()],
}))
"""


def _run(script: str, cache_dir, *, path=None) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two processes, the first compiling six loops: ~1 min on 2 cores
def test_every_loop_is_compiled_once_then_loaded_from_disk(tmp_path):
    first = _run(EVERY_LOOP, tmp_path)
    second = _run(EVERY_LOOP, tmp_path)
    assert all(hits == 0 and misses == 1 for hits, misses in first["stats"].values()), first
    assert all(hits == 1 and misses == 0 for hits, misses in second["stats"].values()), second
    assert second["results"] == first["results"]  # the cached code computes the same bits


USER_MAP = """
import json
import lyapkit as lk
import user_kernels as uk
res = lk.lyapunov_spectrum(lk.from_numba(uk.step, uk.jacobian, 1), steps=200, transient=0,
                           x0=[0.3], backend="numba", seed=0)
from lyapkit.backends._numba_loops import tangent_loop
d = tangent_loop(uk.step, uk.jacobian, 1, 1)
print(json.dumps({"exponent": res.exponents[0], "hits": sum(d.stats.cache_hits.values())}))
"""

KERNELS = """
import numba

@numba.njit
def slope():
    return {slope}

@numba.njit
def step(x, u, p, out):
    out[0] = slope() * x[0]

@numba.njit
def jacobian(x, u, p, J):
    J[0, 0] = slope()
"""


def test_an_edit_to_a_user_kernels_file_is_never_served_stale(tmp_path):
    """The linear map x → a x has the exponent log a; ``slope`` is a callee of both kernels, which
    numba's own cache would not track."""
    (tmp_path / "user_kernels.py").write_text(KERNELS.format(slope=2.0))
    first = _run(USER_MAP, tmp_path / "cache", path=tmp_path)
    again = _run(USER_MAP, tmp_path / "cache", path=tmp_path)
    (tmp_path / "user_kernels.py").write_text(KERNELS.format(slope=3.0))
    edited = _run(USER_MAP, tmp_path / "cache", path=tmp_path)
    assert first["exponent"] == pytest.approx(np.log(2.0), abs=1e-12)
    assert again["hits"] == 1 and again["exponent"] == first["exponent"]
    assert edited["hits"] == 0
    assert edited["exponent"] == pytest.approx(np.log(3.0), abs=1e-12)


def _closure_kernels(a: float):
    from numba import njit

    @njit
    def step(x, u, p, out):
        out[0] = a * x[0]

    @njit
    def jacobian(x, u, p, J):
        J[0, 0] = a

    return step, jacobian


def test_closure_kernels_have_no_key_and_are_not_cached():
    """Two closures share source and name but not their constant: a key would mix them up."""
    from lyapkit.backends._numba_cache import is_ready, loop_key
    from lyapkit.backends._numba_loops import tangent_loop

    step, jacobian = _closure_kernels(2.0)
    assert loop_key("tangent", (step, jacobian), 1, 1) is None
    from lyapkit.maps import numba_kernels as nk

    assert loop_key("tangent", (nk.henon_step, nk.henon_jacobian), 2, 2) is not None
    assert not is_ready(tangent_loop(step, jacobian, 1, 1))


def test_keys_separate_loops_kernels_and_specialisations():
    from lyapkit.backends._numba_cache import loop_key
    from lyapkit.maps import numba_kernels as nk

    keys = {
        loop_key("tangent", (nk.henon_step, nk.henon_jacobian), 2, 2),
        loop_key("tangent", (nk.henon_step, nk.henon_jacobian), 2, 1),
        loop_key("tangent", (nk.cat_step, nk.cat_jacobian), 2, 2),
        loop_key("twin", (nk.henon_step,)),
        loop_key("trajectory", (nk.henon_step, nk.henon_jacobian)),
    }
    assert len(keys) == 5


def test_auto_runs_a_short_run_on_numpy_rather_than_compile():
    """Closure kernels are never cached, so numba would have to compile: not for 100 steps."""
    step, jacobian = _closure_kernels(0.5)
    system = lk.from_numba(step, jacobian, 1)
    res = lk.lyapunov_spectrum(system, steps=100, transient=0, x0=[1.0], seed=0)
    assert res.backend == "numpy"
    assert res.backend_reason.startswith("auto: numpy instead of the preferred numba")
    assert res.to_xarray().attrs["backend_reason"] == res.backend_reason
    assert res.exponents[0] == pytest.approx(np.log(0.5), abs=1e-12)
    requested = lk.lyapunov_spectrum(system, steps=100, transient=0, x0=[1.0], backend="numba")
    assert requested.backend == "numba" and requested.backend_reason == "requested"


def test_auto_compiles_when_the_run_earns_it_back():
    from lyapkit.backends.numba_backend import COMPILE_SECONDS, NumbaBackend
    from lyapkit.backends.numpy_backend import numpy_seconds

    step, jacobian = _closure_kernels(0.5)
    system = lk.from_numba(step, jacobian, 1)
    long = lk.lyapunov_spectrum(system, steps=10, transient=0, x0=[1.0], seed=0, backend="numpy")
    # A plan whose numpy estimate exceeds the compilation: numba is expected to finish first.
    backend, reason = lk.backend.choose_backend(
        "auto", system, plan=_plan_of(system, steps=int(2 * COMPILE_SECONDS[False] / 1.5e-4))
    )
    assert backend.name == "numba" and "expected to finish first" in reason
    plan = _plan_of(system, steps=100)
    assert NumbaBackend().estimated_seconds(system, plan) > numpy_seconds(system, plan)
    assert long.backend_reason == "requested"


def test_a_loop_compiled_in_this_process_is_ready():
    from lyapkit.backends.numba_backend import COMPILE_SECONDS, LOAD_SECONDS, NumbaBackend

    step, jacobian = _closure_kernels(0.25)
    system = lk.from_numba(step, jacobian, 1)
    plan = _plan_of(system, steps=100)
    assert NumbaBackend().estimated_seconds(system, plan) >= COMPILE_SECONDS[False]
    lk.lyapunov_spectrum(system, steps=10, transient=0, x0=[1.0], backend="numba")
    assert NumbaBackend().estimated_seconds(system, plan) < LOAD_SECONDS + 0.1


def _plan_of(system, steps: int) -> lk.TangentPlan:
    from lyapkit.lyapunov import _prepare

    plan, _, _ = _prepare(
        system, steps=steps, x0=[1.0], inputs=None, k=None, transient=0, every=1, ensemble=None,
        seed=0, history=False, finite_time=None, dtype=None, device=None,
    )  # fmt: skip
    return plan


def test_the_source_hash_covers_every_loop_module():
    """Every module of the backend that compiled code comes from (those importing numba, and what
    they import from the backends) is hashed, or edits to it would go unnoticed."""
    import re
    from pathlib import Path

    from lyapkit.backends import _numba_cache

    jitted = {
        p.stem: p.read_text()
        for p in Path(_numba_cache.__file__).parent.glob("_[a-z]*.py")
        if re.search(r"^(from|import) numba", p.read_text(), re.M)
    }
    imported = {
        m for text in jitted.values() for m in re.findall(r"lyapkit\.backends\.(_\w+)", text)
    }
    assert set(jitted) | imported == set(_numba_cache.LOOP_MODULES)
