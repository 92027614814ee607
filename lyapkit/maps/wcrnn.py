"""The weakly coupled residual RNN (WCRNN) as a map, in the three variants of Dubinin & Effenberger (2023).

With ``a = tanh(W x + V s + b)`` and a coupling ``γ`` (scalar or per unit)::

    linear residual:  x' = R x + γ ⊙ a                J = R + diag(γ ⊙ (1 − a²)) W
    type A:           x' = tanh(R x) + γ ⊙ a          J = diag(1 − tanh²(R x)) R + diag(γ ⊙ (1 − a²)) W
    type B:           x' = tanh(R x + γ ⊙ (W x + V s + b))    J = diag(1 − x'²) (R + diag(γ) W)

As ``γ → 0`` the linear-residual map's exponents tend to ``log|eig(R)|``.

The parameter Jacobian is row-local (``∂f_i/∂θ_kj = δ_ik d_i z_j``) with, per unit ``i``::

                      ∂/∂R_ij (z = x)    ∂/∂W_ij, ∂/∂V_ij, ∂/∂b_i (z = x, s, 1)    ∂/∂γ_i
    linear residual:  1                  γ_i (1 − a_i²)                           a_i
    type A:           1 − tanh²(R x)_i   γ_i (1 − a_i²)                           a_i
    type B:           1 − x'_i²          (1 − x'_i²) γ_i                          (1 − x'_i²) h_i

with ``h = W x + V s + b``.

(``γ`` is per unit, also when given as a scalar.)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from lyapkit.maps.base import ArrayMap, NumbaKernels

VARIANTS = ("linear", "A", "B")
#: Parameters with a Jacobian, in the order of the numba kernels' parameter codes.
PARAMETERS = ("R", "W", "gamma", "V", "b")


def wcrnn_update(xp: Any, variant: str, residual: Any, drive: Any, gamma: Any) -> Any:
    """The WCRNN equation, the one source of :class:`WCRNNMap` and the trainable
    :class:`~lyapkit.trainers.models.WCRNN`: from ``residual = R x`` (or ``ρ(x)``) and ``drive =
    W x + V s + b``, ``x' = residual + γ ⊙ tanh(drive)`` (linear), ``tanh(residual) + γ ⊙
    tanh(drive)`` (A) or ``tanh(residual + γ ⊙ drive)`` (B), in namespace ``xp`` (numpy or
    torch)."""
    if variant == "B":
        return xp.tanh(residual + gamma * drive)
    if variant == "A":
        residual = xp.tanh(residual)
    return residual + gamma * xp.tanh(drive)


class WCRNNMap(ArrayMap):
    """Weakly coupled residual RNN map (Dubinin & Effenberger 2023).

    With ``a = tanh(W x + V s + b)`` and coupling ``γ`` (scalar or per unit)::

        linear residual:  x' = R x + γ ⊙ a                J = R + diag(γ ⊙ (1 − a²)) W
        type A:           x' = tanh(R x) + γ ⊙ a          J = diag(1 − tanh²(R x)) R + diag(γ ⊙ (1 − a²)) W
        type B:           x' = tanh(R x + γ ⊙ (W x + V s + b))    J = diag(1 − x'²) (R + diag(γ) W)

    (eq. 11 of the paper [1]_ for the linear residual, eqs. 18 and 19 for types A and B). As
    ``γ → 0`` the exponents of the linear-residual map tend to ``log|eig(R)|``. The parameter
    Jacobian ``∂f/∂θ`` (:meth:`lyapkit.Map.parameter_jacobian`, for ``R, W, gamma, V, b``) is
    analytic and row-local, ``∂f_i/∂θ_kj = δ_ik d_i z_j``, which gives GGN products without
    autodiff (:func:`lyapkit.map_ggn`).

    Parameters
    ----------
    R : (n, n) array
        Residual matrix.
    W : (n, n) array
        Recurrent coupling weights.
    gamma : float or (n,) array, default 0.05
        Coupling strength ``γ``, scalar or per unit (stored per unit).
    V : (n, m) array, optional
        Input weights; ``m`` is the input dimension (0 when omitted).
    b : (n,) array, optional
        Bias (zero when omitted).
    variant : {"linear", "A", "B"}, default "linear"
        Linear residual, non-linear type A or type B.

    Raises
    ------
    ValueError
        For an unknown ``variant``, a non-square ``R``, or ``W``, ``gamma``, ``V`` or ``b`` of
        a shape that does not match ``R``.

    See Also
    --------
    lyapkit.trainers.models.WCRNN : The trainable network whose cell this is.
    lyapkit.theory.wcrnn_prediction : The exponents predicted from ``R``.
    lyapkit.map_ggn : GGN products through the analytic parameter Jacobian.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    With a weak coupling the exponents are those of the residual, ``log|eig(R)|``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> rng = np.random.default_rng(0)
    >>> cell = lk.WCRNNMap(np.diag([0.9, 0.5]), rng.standard_normal((2, 2)), gamma=1e-3)
    >>> res = lk.lyapunov_spectrum(cell, steps=200, transient=20, seed=0, backend="numpy")
    >>> bool(np.allclose(res.exponents, np.log([0.9, 0.5]), atol=0.01))
    True
    >>> cell.parameter_shapes()
    {'R': (2, 2), 'W': (2, 2), 'gamma': (2,), 'V': (2, 0), 'b': (2,)}
    >>> cell.parameter_jacobian(np.zeros(2)).shape
    (2, 12)
    """

    name = "wcrnn"
    jacobian_parameters = PARAMETERS

    def __init__(
        self,
        R: np.ndarray,
        W: np.ndarray,
        gamma: float | np.ndarray = 0.05,
        V: np.ndarray | None = None,
        b: np.ndarray | None = None,
        variant: Literal["linear", "A", "B"] = "linear",
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        R, W = np.asarray(R, dtype=np.float64), np.asarray(W, dtype=np.float64)
        if R.ndim != 2 or R.shape[0] != R.shape[1]:
            raise ValueError(f"R must be a square matrix, got shape {R.shape}")
        n = R.shape[0]
        if W.shape != (n, n):
            raise ValueError(f"W must have shape {(n, n)} like R, got {W.shape}")
        gamma = np.asarray(gamma, dtype=np.float64)
        if gamma.ndim == 0:
            gamma = np.full(n, float(gamma))
        elif gamma.shape != (n,):
            raise ValueError(f"gamma must be a scalar or have shape ({n},), got {gamma.shape}")
        V = np.zeros((n, 0)) if V is None else np.asarray(V, dtype=np.float64)
        if V.ndim != 2 or V.shape[0] != n:
            raise ValueError(f"V must have shape ({n}, input_dim), got {V.shape}")
        b = np.zeros(n) if b is None else np.asarray(b, dtype=np.float64)
        if b.shape != (n,):
            raise ValueError(f"b must have shape ({n},), got {b.shape}")
        self.dim, self.input_dim, self.variant = n, V.shape[1], variant
        self._set_params(R=R, W=W, gamma=gamma, V=V, b=b)

    def _drive(self, p, x, u):
        pre = x @ p["W"].T + p["b"]
        return pre if self.input_dim == 0 else pre + u @ p["V"].T

    def _step(self, xp, p, x, u):
        return wcrnn_update(xp, self.variant, x @ p["R"].T, self._drive(p, x, u), p["gamma"])

    def _jacobian(self, xp, p, x, u):
        return self._step_and_jacobian(xp, p, x, u)[1]

    def _step_and_jacobian(self, xp, p, x, u):
        pre, R, W, gamma = self._drive(p, x, u), p["R"], p["W"], p["gamma"]
        if self.variant == "B":
            y = xp.tanh(x @ R.T + gamma * pre)
            return y, (1 - y * y)[..., :, None] * (R + gamma[:, None] * W)
        a = xp.tanh(pre)
        coupling = (gamma * (1 - a * a))[..., :, None] * W
        if self.variant == "linear":
            return x @ R.T + gamma * a, R + coupling
        r = xp.tanh(x @ R.T)
        return r + gamma * a, (1 - r * r)[..., :, None] * R + coupling

    def _parameter_factors(self, xp, p, x, u):
        pre, R, gamma = self._drive(p, x, u), p["R"], p["gamma"]
        if self.variant == "B":
            dy = 1 - xp.tanh(x @ R.T + gamma * pre) ** 2
            d_res, d_drive, d_gamma = dy, dy * gamma, dy * pre
        else:
            a = xp.tanh(pre)
            d_res = xp.ones_like(x) if self.variant == "linear" else 1 - xp.tanh(x @ R.T) ** 2
            d_drive, d_gamma = gamma * (1 - a * a), a
        one = xp.ones_like(x[..., :1])
        s = u if self.input_dim else x[..., :0]
        return {
            "R": (d_res, x),
            "W": (d_drive, x),
            "gamma": (d_gamma, one),
            "V": (d_drive, s),
            "b": (d_drive, one),
        }

    def numba_kernels(self) -> NumbaKernels:
        """The numba kernels ``wcrnn_step``, ``wcrnn_jacobian`` and the three parameter kernels.

        Returns
        -------
        lyapkit.NumbaKernels
            The kernels, with parameters ``(variant code, R, W, gamma, V, b)`` and the
            parameter-Jacobian kernels of GGN products.
        """
        from lyapkit.maps import numba_kernels as nk

        p = self._params
        params = (VARIANTS.index(self.variant), p["R"], p["W"], p["gamma"], p["V"], p["b"])
        return NumbaKernels(
            nk.wcrnn_step,
            nk.wcrnn_jacobian,
            params,
            parameter_jacobian=nk.wcrnn_parameter_jacobian,
            parameter_jvp=nk.wcrnn_parameter_jvp,
            parameter_vjp=nk.wcrnn_parameter_vjp,
        )
