"""Built-in maps with analytic Jacobians: classic chaotic maps, linear maps, random tanh networks."""

from __future__ import annotations

import math

import numpy as np

from lyapkit._checks import integer, number
from lyapkit.maps.base import ArrayMap, NumbaKernels, matrix


def _kernels(step: str, jacobian: str, params: tuple) -> NumbaKernels:
    from lyapkit.maps import numba_kernels

    return NumbaKernels(getattr(numba_kernels, step), getattr(numba_kernels, jacobian), params)


class Henon(ArrayMap):
    """Hénon map ``(x, y) → (1 − a x² + y, b x)``; Jacobian ``[[−2 a x, 1], [b, 0]]``.

    The map of Hénon [1]_. ``det J = −b`` at every point, so the exponents sum to ``log b``
    exactly; at ``a = 1.4, b = 0.3`` they are ``(0.4192, −1.6232)`` (Sprott 2003 [2]_).

    Parameters
    ----------
    a : float, default 1.4
        The quadratic coefficient.
    b : float, default 0.3
        The contraction ``|det J|``.

    Raises
    ------
    ValueError
        If ``a`` or ``b`` is not one real number.

    See Also
    --------
    lyapkit.lyapunov_spectrum : Its exponents.

    References
    ----------
    .. [1] M. Hénon, "A two-dimensional mapping with a strange attractor", *Communications in
       Mathematical Physics* 50, 69–77 (1976).
    .. [2] J. C. Sprott, *Chaos and Time-Series Analysis*,
       Oxford University Press (2003).

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> henon = lk.Henon()
    >>> henon.step(np.array([0.0, 0.0]))
    array([1., 0.])
    >>> res = lk.lyapunov_spectrum(henon, steps=2000, seed=0, backend="numpy")
    >>> bool(abs(res.exponents[0] - 0.419) < 0.02)
    True
    >>> bool(abs(res.exponents.sum() - np.log(0.3)) < 1e-9)
    True
    """

    name = "henon"
    dim = 2

    def __init__(self, a: float = 1.4, b: float = 0.3):
        self._set_params(a=number(a, "a"), b=number(b, "b"))

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state ``U(−0.1, 0.1)²`` near the origin, in the attractor's basin.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.uniform(-0.1, 0.1, 2)

    def _step(self, xp, p, x, u):
        return xp.stack([1 - p["a"] * x[..., 0] ** 2 + x[..., 1], p["b"] * x[..., 0]], -1)

    def _jacobian(self, xp, p, x, u):
        one = x[..., 0] * 0 + 1
        return matrix(xp, [[-2 * p["a"] * x[..., 0], one], [p["b"] * one, 0 * one]])

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``henon_step`` and ``henon_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``(a, b)``.
        """
        return _kernels("henon_step", "henon_jacobian", (self._params["a"], self._params["b"]))


class Logistic(ArrayMap):
    """Logistic map ``x → r x (1 − x)``; Jacobian ``r (1 − 2x)``.

    The map popularised by May [1]_. At ``r = 4`` the exponent is ``ln 2`` (the map is conjugate to
    the tent map with ``μ = 2``).

    Parameters
    ----------
    r : float, default 4.0
        The growth rate; orbits stay in ``[0, 1]`` for ``0 ≤ r ≤ 4``.

    Raises
    ------
    ValueError
        If ``r`` is not one real number.

    See Also
    --------
    lyapkit.Tent : The map it is conjugate to at ``r = 4``.

    References
    ----------
    .. [1] R. M. May, "Simple mathematical models with very complicated dynamics", *Nature* 261,
       459–467 (1976).

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> res = lk.lyapunov_spectrum(lk.Logistic(r=4.0), steps=2000, seed=0, backend="numpy")
    >>> bool(abs(res.exponents[0] - np.log(2)) < 0.01)
    True
    """

    name = "logistic"
    dim = 1

    def __init__(self, r: float = 4.0):
        self._set_params(r=number(r, "r"))

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state ``U(0.05, 0.95)``, inside the invariant interval.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.uniform(0.05, 0.95, 1)

    def _step(self, xp, p, x, u):
        return p["r"] * x * (1 - x)

    def _jacobian(self, xp, p, x, u):
        return (p["r"] * (1 - 2 * x))[..., None]

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``logistic_step`` and ``logistic_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``(r,)``.
        """
        return _kernels("logistic_step", "logistic_jacobian", (self._params["r"],))


class Tent(ArrayMap):
    """Tent map ``x → μ min(x, 1 − x)``; Jacobian ``±μ``, so the exponent is ``ln μ`` for every orbit.

    For ``μ = 2`` binary floating point sends every orbit to 0 within ~53 steps (the map shifts
    mantissa bits out); the exponent stays ``ln 2`` but the orbit is not typical. Use ``μ < 2`` for
    orbits that stay on the attractor.

    Parameters
    ----------
    mu : float, default 2.0
        The slope ``μ``; orbits stay in ``[0, 1]`` for ``0 ≤ μ ≤ 2``.

    Raises
    ------
    ValueError
        If ``mu`` is not one real number.

    See Also
    --------
    lyapkit.Logistic : Conjugate to the tent map with ``μ = 2`` at ``r = 4``.

    Examples
    --------
    >>> import lyapkit as lk
    >>> res = lk.lyapunov_spectrum(lk.Tent(mu=1.9), steps=200, seed=0, backend="numpy")
    >>> round(float(res.exponents[0]), 3)  # ln 1.9
    0.642
    """

    name = "tent"
    dim = 1

    def __init__(self, mu: float = 2.0):
        self._set_params(mu=number(mu, "mu"))

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state ``U(0, 1)``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.uniform(0.0, 1.0, 1)

    def _step(self, xp, p, x, u):
        return p["mu"] * xp.minimum(x, 1 - x)

    def _jacobian(self, xp, p, x, u):
        return xp.where(x < 0.5, x * 0 + p["mu"], x * 0 - p["mu"])[..., None]

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``tent_step`` and ``tent_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``(mu,)``.
        """
        return _kernels("tent_step", "tent_jacobian", (self._params["mu"],))


class CatMap(ArrayMap):
    """Arnold's cat map ``(x, y) → (2x + y, x + y) mod 1``; exponents ``±ln((3 + √5)/2)``.

    A hyperbolic automorphism of the unit torus (Arnold & Avez [1]_): its Jacobian is the constant
    matrix ``A = [[2, 1], [1, 1]]``, whose eigenvalues are ``(3 ± √5)/2``, and the map preserves
    area (``det A = 1``). The coordinates have period 1.

    See Also
    --------
    lyapkit.CoupledStandardMaps : Another map on a torus.

    References
    ----------
    .. [1] V. I. Arnold and A. Avez, *Ergodic Problems of Classical Mechanics*, W. A. Benjamin,
       New York (1968).

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> res = lk.lyapunov_spectrum(lk.CatMap(), steps=200, transient=20, seed=0, backend="numpy")
    >>> np.round(res.exponents, 3)
    array([ 0.962, -0.962])
    """

    name = "cat"
    dim = 2
    period = 1.0

    def __init__(self) -> None:
        self._set_params(A=np.array([[2.0, 1.0], [1.0, 1.0]]))

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state uniform on the unit torus ``[0, 1)²``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.uniform(0.0, 1.0, 2)

    def _step(self, xp, p, x, u):
        return (x @ p["A"].T) % 1.0

    def _jacobian(self, xp, p, x, u):
        return x[..., :, None] * 0 + p["A"]

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``cat_step`` and ``cat_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``()``.
        """
        return _kernels("cat_step", "cat_jacobian", ())


class CoupledStandardMaps(ArrayMap):
    """``M`` coupled standard maps on the torus, a symplectic map of dimension ``2M``.

    State ``(θ_1..θ_M, p_1..p_M)``, neighbours on a ring::

        p_i' = p_i + k_i sin θ_i − Γ [sin(θ_{i+1} − θ_i) + sin(θ_{i−1} − θ_i)]   (mod 2π)
        θ_i' = θ_i + p_i'                                                           (mod 2π)

    With ``K = ∂p'/∂θ`` (symmetric) the Jacobian is ``[[I + K, I], [K, I]]``, so ``det J = 1`` and
    the exponents pair as ``λ_i = −λ_{2M−i+1}``. Each map is Chirikov's standard map [1]_.

    Parameters
    ----------
    M : int, default 3
        Number of maps on the ring (the state has ``2M`` coordinates, each of period ``2π``).
    k : float or (M,) array, default 1.0
        Kick strength ``k_i``, one for all maps or one per map.
    coupling : float, default 0.1
        The nearest-neighbour coupling ``Γ``.

    Raises
    ------
    ValueError
        If ``M`` is not a positive integer, ``k`` is neither a scalar nor of shape ``(M,)``, or
        ``coupling`` is not one real number.

    See Also
    --------
    lyapkit.CatMap : A map on the two-torus.

    References
    ----------
    .. [1] B. V. Chirikov, "A universal instability of many-dimensional oscillator systems",
       *Physics Reports* 52(5), 263–379 (1979).

    Examples
    --------
    >>> import lyapkit as lk
    >>> system = lk.CoupledStandardMaps(M=2, k=2.0, coupling=0.1)
    >>> system.dim
    4
    >>> res = lk.lyapunov_spectrum(system, steps=1000, seed=0, backend="numpy")
    >>> bool(abs(res.exponents.sum()) < 1e-9)  # symplectic: det J = 1
    True
    """

    name = "coupled_standard_maps"
    period = 2 * math.pi

    def __init__(self, M: int = 3, k: float | np.ndarray = 1.0, coupling: float = 0.1):
        self.M = integer(M, "M", 1)
        self.dim = 2 * self.M
        k = np.asarray(k, dtype=np.float64)
        if k.shape not in ((), (self.M,)):
            raise ValueError(f"k must be a scalar or have shape ({self.M},), got {k.shape}")
        k = np.broadcast_to(k, (self.M,)).copy()
        eye = np.eye(self.M)
        self._set_params(
            k=k,
            coupling=number(coupling, "coupling"),
            eye=eye,
            right=np.roll(eye, 1, axis=1),  # right[i, i+1] = 1
            left=np.roll(eye, -1, axis=1),  # left[i, i-1] = 1
        )

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state uniform on the torus ``[0, 2π)^(2M)``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.uniform(0.0, 2 * math.pi, self.dim)

    def _momentum_kick(self, xp, p, theta):
        right, left = xp.roll(theta, -1, -1) - theta, xp.roll(theta, 1, -1) - theta
        kick = p["k"] * xp.sin(theta) - p["coupling"] * (xp.sin(right) + xp.sin(left))
        return kick, xp.cos(right), xp.cos(left)

    def _step(self, xp, p, x, u):
        theta, mom = x[..., : self.M], x[..., self.M :]
        kick, _, _ = self._momentum_kick(xp, p, theta)
        mom = mom + kick
        return xp.concatenate([(theta + mom) % (2 * math.pi), mom % (2 * math.pi)], -1)

    def _jacobian(self, xp, p, x, u):
        theta = x[..., : self.M]
        _, cos_right, cos_left = self._momentum_kick(xp, p, theta)
        g = p["coupling"]
        diag = p["k"] * xp.cos(theta) + g * (cos_right + cos_left)
        K = (
            diag[..., :, None] * p["eye"]
            - g * cos_right[..., :, None] * p["right"]
            - g * cos_left[..., :, None] * p["left"]
        )
        eye = K * 0 + p["eye"]
        return xp.concatenate(
            [xp.concatenate([eye + K, eye], -1), xp.concatenate([K, eye], -1)], -2
        )

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``coupled_standard_step`` and ``coupled_standard_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``(k, coupling)``.
        """
        return _kernels(
            "coupled_standard_step",
            "coupled_standard_jacobian",
            (self._params["k"], self._params["coupling"]),
        )


class LinearMap(ArrayMap):
    """Linear map ``x → A x + B u``; its exponents are ``log|eig(A)|`` (sorted).

    The Jacobian is ``A`` everywhere (the input does not change it), so the spectrum is that of
    ``A`` whatever the inputs.

    Parameters
    ----------
    A : (n, n) array
        The state matrix; ``dim = n``.
    B : (n, m) array, optional
        The input matrix; ``input_dim = m`` (default: no input).

    Raises
    ------
    ValueError
        If ``A`` is not square or ``B`` does not have ``n`` rows and two axes.

    See Also
    --------
    lyapkit.WCRNNMap : Tends to a linear map as its coupling vanishes.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> linear = lk.LinearMap(np.array([[0.5, 1.0], [0.0, 0.8]]))
    >>> res = lk.lyapunov_spectrum(linear, steps=100, transient=50, seed=0, backend="numpy")
    >>> np.round(res.exponents, 3)  # log 0.8, log 0.5
    array([-0.223, -0.693])
    >>> lk.LinearMap(np.eye(2), B=np.ones((2, 1))).step(np.zeros(2), np.array([3.0]))
    array([3., 3.])
    """

    name = "linear"

    def __init__(self, A: np.ndarray, B: np.ndarray | None = None):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got shape {A.shape}")
        self.dim = A.shape[0]
        B = np.zeros((self.dim, 0)) if B is None else np.asarray(B, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != self.dim:
            raise ValueError(f"B must have shape ({self.dim}, input_dim), got {B.shape}")
        self.input_dim = B.shape[1]
        self._set_params(A=A, B=B)

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state ``N(0, I)``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.standard_normal(self.dim)

    def _step(self, xp, p, x, u):
        y = x @ p["A"].T
        return y if self.input_dim == 0 else y + u @ p["B"].T

    def _jacobian(self, xp, p, x, u):
        return x[..., :, None] * 0 + p["A"]

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``linear_step`` and ``linear_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``(A, B)``.
        """
        return _kernels("linear_step", "linear_jacobian", (self._params["A"], self._params["B"]))


class TanhNetwork(ArrayMap):
    """Random rate network ``x → tanh(g W x + U u + b)``, ``W_ij ~ N(0, 1/n)``.

    Jacobian ``diag(1 − x'²) g W``. For ``g > 1`` (and large ``n``) the autonomous network is chaotic
    (the discrete-time counterpart of Sompolinsky et al. [1]_). With ``b = 0`` and no input, 0 is a
    fixed point, stable when ``g ρ(W) < 1`` (``ρ(W) → 1`` as ``n`` grows).

    Parameters
    ----------
    n : int, default 64
        Number of units (``dim``).
    g : float, default 1.5
        The gain multiplying ``W``.
    input_dim : int, default 0
        Number of inputs.
    W : (n, n) array, optional
        Recurrent weights (default: ``N(0, 1/n)`` entries drawn from ``seed``).
    U : (n, input_dim) array, optional
        Input weights (default: ``N(0, 1)`` entries drawn from ``seed``).
    b : (n,) array, optional
        Bias (default: zero).
    seed : int or None, default 0
        Seed of the random weights.

    Raises
    ------
    ValueError
        If ``W``, ``U`` or ``b`` has the wrong shape, or ``g`` is not one real number.

    See Also
    --------
    lyapkit.WCRNNMap : A residual recurrent network.

    References
    ----------
    .. [1] H. Sompolinsky, A. Crisanti and H. J. Sommers, "Chaos in random neural networks",
       *Physical Review Letters* 61(3), 259–262 (1988).

    Examples
    --------
    >>> import lyapkit as lk
    >>> chaotic = lk.lyapunov_spectrum(lk.TanhNetwork(n=32, g=2.0), steps=300, k=1, seed=0,
    ...                                backend="numpy")
    >>> quiet = lk.lyapunov_spectrum(lk.TanhNetwork(n=32, g=0.5), steps=300, k=1, seed=0,
    ...                              backend="numpy")
    >>> bool(chaotic.exponents[0] > 0), bool(quiet.exponents[0] < 0)
    (True, True)
    """

    name = "tanh_network"

    def __init__(
        self,
        n: int = 64,
        g: float = 1.5,
        input_dim: int = 0,
        *,
        W: np.ndarray | None = None,
        U: np.ndarray | None = None,
        b: np.ndarray | None = None,
        seed: int | None = 0,
    ):
        rng = np.random.default_rng(seed)
        self.dim, self.input_dim = int(n), int(input_dim)
        W = rng.standard_normal((n, n)) / math.sqrt(n) if W is None else np.asarray(W, float)
        U = rng.standard_normal((n, input_dim)) if U is None else np.asarray(U, float)
        b = np.zeros(n) if b is None else np.asarray(b, float)
        if W.shape != (n, n) or U.shape != (n, input_dim) or b.shape != (n,):
            raise ValueError(
                f"expected W ({n}, {n}), U ({n}, {input_dim}), b ({n},); "
                f"got {W.shape}, {U.shape}, {b.shape}"
            )
        self.g = number(g, "g")
        self._set_params(gW=self.g * W, U=U, b=b)

    def _step(self, xp, p, x, u):
        pre = x @ p["gW"].T + p["b"]
        return xp.tanh(pre if self.input_dim == 0 else pre + u @ p["U"].T)

    def _jacobian(self, xp, p, x, u):
        return self._step_and_jacobian(xp, p, x, u)[1]

    def _step_and_jacobian(self, xp, p, x, u):
        y = self._step(xp, p, x, u)
        return y, (1 - y * y)[..., :, None] * p["gW"]

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``tanh_network_step`` and ``tanh_network_jacobian``.

        Returns
        -------
        lyapkit.NumbaKernels
            The jitted step and Jacobian, with parameters ``(g W, U, b)``.
        """
        p = self._params
        return _kernels("tanh_network_step", "tanh_network_jacobian", (p["gW"], p["U"], p["b"]))
