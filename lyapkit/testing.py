"""The conformance suite every backend passes, built-in or plugin.

Each check takes a backend (a registered name or a :class:`lyapkit.Backend` instance) and raises
``AssertionError`` when the backend breaks the protocol's contract; the reference is the numpy
backend. Run all of them with :func:`lyapkit.testing.check_backend`, or one test per check and
backend with pytest::

    import pytest
    from lyapkit.testing import backend_cases

    @pytest.mark.parametrize("backend, check", backend_cases(["mine"]))
    def test_conformance(backend, check):
        check(backend)

The checks:

- ``agrees_with_numpy``: reference maps (driven WCRNNs of the three variants, a driven tanh
  network, a driven linear map, 25 steps of the Hénon map), an ensemble of 3 with inputs of its
  own per member: exponents per member, history, final state and final tangent span equal the
  numpy backend's to 1e-9;
- ``shared_inputs``: 2-D inputs are every member's inputs: the same result as repeating them
  per member;
- ``fewer_exponents``: ``k < n`` equals the numpy backend's ``k`` leading exponents;
- ``float32``: either refused with :class:`lyapkit.BackendError` or within float32 rounding of
  the float64 reference;
- ``overflow``: a trajectory that overflows gives NaN exponents, the step it blew up at, and
  one :class:`lyapkit.NonFiniteTrajectoryWarning`;
- ``errors``: an unsupported dtype is a :class:`lyapkit.BackendError`, a bad ``x0`` a
  ``ValueError`` naming it;
- ``twin`` and ``covariant`` (capabilities a backend may refuse with
  :class:`lyapkit.BackendError`): equal to numpy's when it has them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from lyapkit.backend import Backend, BackendError, available_backends, get_backend
from lyapkit.clv import covariant_vectors
from lyapkit.lyapunov import (
    IllConditionedBasisWarning,
    NonFiniteTrajectoryWarning,
    lyapunov_spectrum,
    max_lyapunov_twin,
)
from lyapkit.maps import Henon, LinearMap, Map, TanhNetwork, WCRNNMap

__all__ = ["CHECKS", "backend_cases", "check_backend", "reference_systems"]

BackendLike = str | Backend
_TOL = 1e-9


def _wcrnn(variant: str, n: int = 8, m: int = 2, seed: int = 0) -> WCRNNMap:
    rng = np.random.default_rng(seed)
    R = 0.9 * np.linalg.qr(rng.standard_normal((n, n)))[0]
    return WCRNNMap(
        R,
        rng.standard_normal((n, n)) / np.sqrt(n),
        rng.uniform(0.02, 0.1, n),
        V=rng.standard_normal((n, m)),
        b=0.1 * rng.standard_normal(n),
        variant=variant,
    )


@functools.cache
def reference_systems() -> dict[str, tuple[Map, int]]:
    """The maps the checks run, with their number of steps: ``name → (map, steps)``.

    Non-chaotic maps (driven WCRNNs, a tanh network with gain 0.8, a contracting linear map)
    agree between backends to rounding over thousands of steps; the Hénon map only over 25 steps
    (rounding differences grow like ``e^{0.42 t}``).

    Returns
    -------
    dict of str to (lyapkit.Map, int)
        The same objects on every call (the numba backend compiles once per map's kernels).

    Examples
    --------
    >>> from lyapkit.testing import reference_systems
    >>> sorted(reference_systems())
    ['henon-short', 'linear', 'tanh-g0.8', 'wcrnn-A', 'wcrnn-B', 'wcrnn-linear']
    """
    return {
        "wcrnn-linear": (_wcrnn("linear"), 3000),
        "wcrnn-A": (_wcrnn("A"), 3000),
        "wcrnn-B": (_wcrnn("B"), 3000),
        "tanh-g0.8": (TanhNetwork(4, g=0.8, input_dim=2, seed=1), 3000),
        "linear": (LinearMap(np.diag([0.7, 0.4, -0.5, 0.2]) + 0.05, np.ones((4, 2))), 3000),
        "henon-short": (Henon(), 25),
    }


def _inputs(system: Map, members: int, steps: int, seed: int = 2) -> dict[str, Any]:
    if not system.input_dim:
        return {}
    rng = np.random.default_rng(seed)
    return {"inputs": rng.standard_normal((members, steps, system.input_dim))}


def _supported(backend: BackendLike, system: Map) -> bool:
    return (get_backend(backend) if isinstance(backend, str) else backend).supports(system)


def _name(backend: BackendLike) -> str:
    return backend if isinstance(backend, str) else backend.name


def _span(Q: np.ndarray) -> np.ndarray:
    """Projector onto the span of the columns of ``Q``: tangent vectors are defined up to sign."""
    return Q @ np.swapaxes(Q, -1, -2)


def _assert_same_spectrum(res: Any, ref: Any, what: str) -> None:
    for field in ("member_exponents", "history", "final_state"):
        np.testing.assert_allclose(
            getattr(res, field), getattr(ref, field), rtol=0, atol=_TOL, err_msg=f"{what}: {field}"
        )
    np.testing.assert_allclose(
        _span(res.final_basis), _span(ref.final_basis), atol=1e2 * _TOL, err_msg=f"{what}: basis"
    )


def check_agrees_with_numpy(backend: BackendLike) -> None:
    """Every supported reference map, an ensemble of 3 with per-member inputs: numpy's numbers.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    for name, (system, steps) in reference_systems().items():
        if not _supported(backend, system):
            continue
        kw = dict(steps=steps, transient=10, ensemble=3, seed=21, reortho_every=2)
        kw |= _inputs(system, 3, steps + 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IllConditionedBasisWarning)  # not what is checked
            res = lyapunov_spectrum(system, backend=backend, **kw)
            ref = lyapunov_spectrum(system, backend="numpy", **kw)
        assert res.backend == _name(backend), f"{name}: result names backend {res.backend!r}"
        _assert_same_spectrum(res, ref, name)


def check_shared_inputs(backend: BackendLike) -> None:
    """2-D inputs ``(T, m)`` drive every member: the same as repeating them per member.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system, _ = reference_systems()["wcrnn-linear"]
    if not _supported(backend, system):
        return
    shared = _inputs(system, 1, 210)["inputs"][0]
    kw = dict(steps=200, transient=10, ensemble=3, seed=4, backend=backend)
    res = lyapunov_spectrum(system, inputs=shared, **kw)
    ref = lyapunov_spectrum(system, inputs=np.broadcast_to(shared, (3, *shared.shape)), **kw)
    _assert_same_spectrum(res, ref, "shared inputs")


def check_fewer_exponents(backend: BackendLike) -> None:
    """``k = 3`` of ``n = 8``: the numpy backend's three leading exponents.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system, steps = reference_systems()["wcrnn-linear"]
    if not _supported(backend, system):
        return
    kw = dict(steps=steps, transient=10, ensemble=2, seed=5, k=3) | _inputs(system, 2, steps + 10)
    res = lyapunov_spectrum(system, backend=backend, **kw)
    ref = lyapunov_spectrum(system, backend="numpy", **kw)
    assert res.exponents.shape == (3,), f"k=3 gave {res.exponents.shape[0]} exponents"
    _assert_same_spectrum(res, ref, "k < n")


def check_float32(backend: BackendLike) -> None:
    """float32 is refused with a BackendError, or within its rounding of the float64 reference.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system, _ = reference_systems()["tanh-g0.8"]
    if not _supported(backend, system):
        return
    kw = dict(steps=2000, seed=5, inputs=_inputs(system, 1, 2000)["inputs"][0])
    try:
        res = lyapunov_spectrum(system, backend=backend, dtype="float32", **kw)
    except BackendError:
        return
    ref = lyapunov_spectrum(system, backend="numpy", **kw)
    # ε ≈ 1.2e-7 accumulates over the run: about four digits of the exponents remain
    np.testing.assert_allclose(res.exponents, ref.exponents, rtol=2e-4, atol=1e-4)


def check_overflow(backend: BackendLike) -> None:
    """A trajectory that overflows: NaN exponents, its blow-up step, one warning.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system = LinearMap(np.diag([1e10, 0.5, 0.5, 0.5]), np.zeros((4, 2)))
    if not _supported(backend, system):
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lyapunov_spectrum(system, steps=100, x0=np.ones(4), seed=0, backend=backend)
    kinds = [w.category for w in caught]
    assert kinds == [NonFiniteTrajectoryWarning], f"warnings: {kinds}"
    assert np.isnan(res.exponents).all(), f"exponents {res.exponents} after an overflow"
    assert res.blowup_steps[0] == 31, f"blow-up at step {res.blowup_steps[0]}, not 31"  # 1e310


def check_errors(backend: BackendLike) -> None:
    """An unsupported dtype is a BackendError; an ``x0`` of the wrong shape a ValueError.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system = Henon()
    if not _supported(backend, system):
        return
    try:
        lyapunov_spectrum(system, steps=5, x0=[0.1, 0.1], seed=0, backend=backend, dtype="float16")
    except BackendError:
        pass
    else:
        raise AssertionError("dtype='float16' was not refused with a BackendError")
    try:
        lyapunov_spectrum(system, steps=5, x0=[0.1, 0.1, 0.1], seed=0, backend=backend)
    except ValueError as err:
        assert "x0" in str(err), f"the error does not name x0: {err}"
    else:
        raise AssertionError("an x0 of 3 entries for a 2-D map was accepted")


def _optional(backend: BackendLike, run: Callable[[BackendLike], Any]) -> Any:
    """``run(backend)``, or None when the backend refuses it with a BackendError (an optional
    capability it does not have)."""
    try:
        return run(backend)
    except BackendError:
        return None


def check_twin(backend: BackendLike) -> None:
    """The two-trajectory method equals numpy's, or is refused with a BackendError.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system, _ = reference_systems()["wcrnn-linear"]
    if not _supported(backend, system):
        return
    inputs = np.random.default_rng(3).standard_normal((500, 2))
    kw = dict(steps=490, transient=10, inputs=inputs, seed=23, separation=1e-7, renorm_every=3)
    res = _optional(backend, lambda b: max_lyapunov_twin(system, backend=b, **kw))
    if res is not None:
        ref = max_lyapunov_twin(system, backend="numpy", **kw)
        np.testing.assert_allclose(res.member_exponents, ref.member_exponents, atol=_TOL)


def check_covariant(backend: BackendLike) -> None:
    """Covariant Lyapunov vectors equal numpy's (up to sign), or are refused with a BackendError.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        The backend under test.
    """
    system, _ = reference_systems()["wcrnn-linear"]
    if not _supported(backend, system):
        return
    kw = dict(steps=40, transient=50, tail=50, seed=6, ensemble=2) | _inputs(system, 2, 140)
    res = _optional(backend, lambda b: covariant_vectors(system, backend=b, **kw))
    if res is not None:
        ref = covariant_vectors(system, backend="numpy", **kw)
        np.testing.assert_allclose(res.exponents, ref.exponents, atol=_TOL)
        dots = np.abs((res.vectors * ref.vectors).sum(-2))  # unit vectors, up to sign
        np.testing.assert_allclose(dots, 1.0, atol=1e-7)


#: every check, by name, in the order :func:`lyapkit.testing.check_backend` runs them
CHECKS: dict[str, Callable[[BackendLike], None]] = {
    "agrees_with_numpy": check_agrees_with_numpy,
    "shared_inputs": check_shared_inputs,
    "fewer_exponents": check_fewer_exponents,
    "float32": check_float32,
    "overflow": check_overflow,
    "errors": check_errors,
    "twin": check_twin,
    "covariant": check_covariant,
}


def check_backend(backend: BackendLike, checks: Iterable[str] | None = None) -> None:
    """Run the conformance checks on ``backend``; raise naming every check that failed.

    Parameters
    ----------
    backend : str or lyapkit.Backend
        A registered backend's name or an instance (a plugin before it is packaged).
    checks : iterable of str, optional
        Names from :data:`lyapkit.testing.CHECKS` (default: all).

    Raises
    ------
    AssertionError
        One or more checks failed; the message holds each failure.
    ValueError
        An unknown check name.

    Examples
    --------
    >>> from lyapkit.testing import check_backend
    >>> check_backend("numpy", checks=["overflow", "errors"])
    """
    names = list(CHECKS) if checks is None else list(checks)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise ValueError(f"checks must be names from {list(CHECKS)}, got {unknown}")
    failures = []
    for name in names:
        try:
            CHECKS[name](backend)
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    if failures:
        raise AssertionError(f"backend {_name(backend)!r} failed:\n" + "\n".join(failures))


def backend_cases(backends: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param(backend, check)`` for every check and backend, skipping uninstalled ones.

    Parameters
    ----------
    backends : iterable of str, optional
        Registered backend names (default: every registered backend,
        :func:`lyapkit.backend_names`); those whose dependencies are missing are marked skip.

    Returns
    -------
    list of pytest.param
        Ids ``"<backend>-<check>"``; use with ``pytest.mark.parametrize("backend, check", ...)``.

    Examples
    --------
    >>> from lyapkit.testing import backend_cases
    >>> [case.id for case in backend_cases(["numpy"])][:2]
    ['numpy-agrees_with_numpy', 'numpy-shared_inputs']
    """
    import pytest

    from lyapkit.backend import backend_names

    installed = set(available_backends())
    cases = []
    for backend in backend_names() if backends is None else backends:
        marks = () if backend in installed else pytest.mark.skip(f"{backend} is not installed")
        cases += [
            pytest.param(backend, check, id=f"{backend}-{name}", marks=marks)
            for name, check in CHECKS.items()
        ]
    return cases
