"""Linear recurrent networks: complex-diagonal (LRU), real-diagonal, 2×2 block-diagonal and dense.

Every model runs the linear recurrence ``h_t = A h_{t−1} + B u_t`` (A diagonal, block-diagonal or
dense; complex for complex units) with :func:`lyapkit.trainers.models.linear_recurrence` (the
parallel scan :func:`lyapkit.trainers.models.linear_scan`, or for a diagonal ``A`` on the CPU a
tape-free loop), and is a
:class:`lyapkit.LinearMap` snapshot of its weights (``model.as_map()``), whose Lyapunov exponents
are ``log|eig(A)|``. These are the students and the teacher of the curse-of-memory teacher–student
task (Zucchet & Orvieto 2024).

Complex hidden units ``h ∈ ℂ^H`` are stored in the real state ``s = (Re h, Im h) ∈ ℝ^{2H}`` (real
parts first, then imaginary parts), so ``h_j = s_j + i s_{H+j}``.
"""

from __future__ import annotations

import abc
import math
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lyapkit._checks import integer, number
from lyapkit.maps import LinearMap
from lyapkit.trainers.models.base import RecurrentModel
from lyapkit.trainers.models.residuals import random_orthogonal, rotation_blocks

TWO_PI = 2 * math.pi
PARAMETRIZATIONS = ("exponential", "polar")

Seed = int | np.random.Generator | None


def _check_recurrence(
    decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor | None
) -> torch.dtype:
    """Validate the arguments of :func:`lyapkit.trainers.models.linear_scan`; return the promoted dtype."""
    if not isinstance(drive, torch.Tensor) or drive.ndim < 2:
        raise ValueError(
            f"drive must be a tensor (..., T, n), got {getattr(drive, 'shape', drive)!r}"
        )
    n = drive.shape[-1]
    if not isinstance(decay, torch.Tensor) or tuple(decay.shape) not in ((n,), (n, n)):
        shape = tuple(getattr(decay, "shape", ()))
        raise ValueError(f"decay must have shape ({n},) or ({n}, {n}) to match drive, got {shape}")
    expected = tuple(drive.shape[:-2]) + (n,)
    if state is not None and tuple(state.shape) != expected:
        raise ValueError(f"state must have shape {expected}, got {tuple(state.shape)}")
    return torch.promote_types(decay.dtype, drive.dtype)


def linear_scan(
    decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor | None = None
) -> torch.Tensor:
    """All states of the linear recurrence ``h_t = A h_{t−1} + x_t``, ``t = 1 … T``, by a parallel scan.

    The solution ``h_t = A^t h_0 + Σ_{s ≤ t} A^{t−s} x_s`` is built in ``⌈log₂ T⌉`` doubling levels
    ``y_t ← y_t + A^{2^k} y_{t−2^k}`` (see Notes), each vectorised over time.

    Parameters
    ----------
    decay : torch.Tensor
        ``A``: a vector ``(n,)`` for a diagonal recurrence (``A h = a ⊙ h``) or a matrix ``(n, n)``
        (``A h = h @ A.T`` on row vectors); real or complex.
    drive : torch.Tensor
        The drive ``x_1 … x_T``, shape ``(..., T, n)`` (``(batch, T, n)`` for a model).
    state : torch.Tensor, optional
        ``h_0``, shape ``(..., n)``; default 0.

    Returns
    -------
    torch.Tensor
        ``h_1 … h_T``, shape ``(..., T, n)``, in the promoted dtype of ``decay`` and ``drive``.

    Raises
    ------
    ValueError
        If ``drive`` is not a tensor with at least 2 dims, ``decay`` is not of shape ``(n,)`` or
        ``(n, n)`` for the last dim ``n`` of ``drive``, or ``state`` is not of shape ``(..., n)``
        matching the leading dims of ``drive``.

    See Also
    --------
    lyapkit.trainers.models.linear_recurrence : The same recurrence by the fastest exact route.

    Notes
    -----
    Hillis–Steele doubling: starting from ``y = x``, level ``k = 0, 1, …`` adds ``A^{2^k}`` applied to
    ``y`` shifted by ``2^k`` steps, ``y_t ← y_t + A^{2^k} y_{t−2^k}``; after level ``k``
    ``y_t = Σ_{s = t−2^{k+1}+1}^{t} A^{t−s} x_s``, so ``⌈log₂ T⌉`` levels give ``y_t = h_t``. The
    powers come by repeated squaring. A nonzero ``h_0`` is scanned as an extra leading drive element.
    Each level is out-of-place and vectorised over time, so autograd differentiates through it.

    References
    ----------
    .. [1] W. D. Hillis and G. L. Steele Jr., "Data parallel algorithms", Communications of the
       ACM 29(12), 1170–1183, 1986.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import linear_scan
    >>> linear_scan(torch.tensor([0.5, -0.5]), torch.ones(4, 2)).tolist()
    [[1.0, 1.0], [1.5, 0.5], [1.75, 0.75], [1.875, 0.625]]

    A rotation by 90° from ``h_0 = (1, 0)``:

    >>> A = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    >>> linear_scan(A, torch.ones(4, 2), state=torch.tensor([1.0, 0.0])).tolist()
    [[1.0, 2.0], [-1.0, 2.0], [-1.0, 0.0], [1.0, 0.0]]
    """
    dtype = _check_recurrence(decay, drive, state)
    y, power = drive.to(dtype), decay.to(dtype)
    if state is not None:
        y = torch.cat([state.to(dtype).unsqueeze(-2), y], -2)
    diagonal = decay.ndim == 1
    T, shift = y.shape[-2], 1
    while shift < T:
        carried = power * y[..., :-shift, :] if diagonal else y[..., :-shift, :] @ power.mT
        y = torch.cat([y[..., :shift, :], y[..., shift:, :] + carried], -2)
        shift *= 2
        if shift < T:
            power = power * power if diagonal else power @ power
    return y if state is None else y[..., 1:, :]


class _DiagonalRecurrence(torch.autograd.Function):
    """``h_t = a ⊙ h_{t−1} + x_t`` (time-major ``(T, ..., n)``) with its adjoint as the backward.

    The adjoint of a linear recurrence is the same recurrence run backwards in time with the
    conjugate decay (PyTorch's convention for complex gradients)::

        g_t = ḡ_t + conj(a) ⊙ g_{t+1},   ∂L/∂x_t = g_t,   ∂L/∂a = Σ_t g_t ⊙ conj(h_{t−1}),   ∂L/∂h_0 = conj(a) ⊙ g_1.

    Both directions run as a tape-free loop on the CPU (``O(T)`` work, no per-step autograd
    nodes) and as the parallel :func:`lyapkit.trainers.models.linear_scan` on other devices.
    """

    @staticmethod
    def run(decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if drive.device.type != "cpu":
            return linear_scan(decay, drive.movedim(0, -2), state).movedim(-2, 0)
        out = torch.empty_like(drive)
        for t in range(drive.shape[0]):
            torch.addcmul(drive[t], decay, state if t == 0 else out[t - 1], out=out[t])
        return out

    @staticmethod
    def forward(ctx, decay, drive, state):
        states = _DiagonalRecurrence.run(decay, drive, state)
        ctx.save_for_backward(decay, states, state)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states):
        decay, states, state = ctx.saved_tensors
        adjoint = decay.conj()
        g = _DiagonalRecurrence.run(adjoint, grad_states.flip(0), torch.zeros_like(state)).flip(0)
        previous = torch.cat([state[None], states[:-1]])
        grad_decay = (g * previous.conj()).reshape(-1, decay.shape[0]).sum(0)
        return grad_decay, g, adjoint * g[0]


def linear_recurrence(
    decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor | None = None
) -> torch.Tensor:
    """All states of ``h_t = A h_{t−1} + x_t``, ``t = 1 … T``, by the fastest exact route.

    The same result as :func:`lyapkit.trainers.models.linear_scan`. A diagonal ``A`` runs a
    tape-free loop on the CPU (where the scan's ``O(T log T)`` work is about seven times slower)
    whose backward is the adjoint recurrence ``g_t = ḡ_t + conj(a) ⊙ g_{t+1}`` run backwards in
    time, and the parallel scan elsewhere; a dense ``A`` runs the parallel scan, whose ``⌈log₂ T⌉``
    large matrix products beat ``T`` small ones everywhere.

    Parameters
    ----------
    decay : torch.Tensor
        ``A``: a vector ``(n,)`` for a diagonal recurrence (``A h = a ⊙ h``) or a matrix ``(n, n)``
        (``A h = h @ A.T`` on row vectors); real or complex.
    drive : torch.Tensor
        The drive ``x_1 … x_T``, shape ``(..., T, n)``.
    state : torch.Tensor, optional
        ``h_0``, shape ``(..., n)``; default 0.

    Returns
    -------
    torch.Tensor
        ``h_1 … h_T``, shape ``(..., T, n)``, in the promoted dtype of ``decay`` and ``drive``. The
        diagonal CPU loop is differentiable once (not twice).

    Raises
    ------
    ValueError
        For arguments of mismatched shapes, as :func:`lyapkit.trainers.models.linear_scan`.

    See Also
    --------
    lyapkit.trainers.models.linear_scan : The parallel scan.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import linear_recurrence
    >>> linear_recurrence(torch.tensor([0.5, -0.5]), torch.ones(4, 2)).tolist()
    [[1.0, 1.0], [1.5, 0.5], [1.75, 0.75], [1.875, 0.625]]
    """
    dtype = _check_recurrence(decay, drive, state)
    if decay.ndim != 1:
        return linear_scan(decay, drive, state)
    if state is None:
        state = drive.new_zeros(drive.shape[:-2] + drive.shape[-1:], dtype=dtype)
    states = _DiagonalRecurrence.apply(decay.to(dtype), drive.to(dtype).movedim(-2, 0).contiguous(),
                                       state.to(dtype))  # fmt: skip
    return states.movedim(0, -2)


def _rng(seed: Seed) -> np.random.Generator:
    """A numpy generator from ``seed``; without one, seeded from torch's global RNG so that
    ``torch.manual_seed`` makes the whole model reproducible."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    elif not isinstance(seed, (int, np.integer, np.random.Generator)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def _parameter(values: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.as_tensor(values, dtype=torch.get_default_dtype()))


def _check_radii(r_min: float, r_max: float) -> tuple[float, float]:
    if not 0 <= r_min <= 1:
        raise ValueError(f"r_min must be in [0, 1], got {r_min!r}")
    if not 0 <= r_max <= 1:
        raise ValueError(f"r_max must be in [0, 1], got {r_max!r}")
    if r_min > r_max:
        raise ValueError(f"r_min must be ≤ r_max, got r_min={r_min!r} > r_max={r_max!r}")
    return float(r_min), float(r_max)


def ring_sample(
    n: int, r_min: float, r_max: float, max_phase: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` eigenvalues uniform on the ring ``r_min ≤ |λ| ≤ r_max``, ``0 ≤ arg λ ≤ max_phase``.

    ``|λ|² ~ U(r_min², r_max²)`` (uniform in area, Orvieto et al. 2023) and
    ``arg λ ~ U(0, max_phase)``, independently.

    Parameters
    ----------
    n : int
        Number of eigenvalues.
    r_min, r_max : float
        Radii of the ring, ``0 ≤ r_min ≤ r_max ≤ 1``.
    max_phase : float
        Largest argument, in ``[0, 2π]``.
    rng : numpy.random.Generator
        The random generator.

    Returns
    -------
    radius, phase : numpy.ndarray
        ``|λ|`` and ``arg λ``, each of shape ``(n,)``.

    Raises
    ------
    ValueError
        If the radii are not ``0 ≤ r_min ≤ r_max ≤ 1`` or ``max_phase`` is not in ``[0, 2π]``.
    """
    r_min, r_max = _check_radii(r_min, r_max)
    if not 0 <= max_phase <= TWO_PI:
        raise ValueError(f"max_phase must be in [0, 2π], got {max_phase!r}")
    radius = np.sqrt(rng.uniform(r_min**2, r_max**2, n))
    return radius, rng.uniform(0.0, max_phase, n)


def ring_blocks(
    n: int, r_min: float, r_max: float, max_phase: float, rng: np.random.Generator
) -> np.ndarray:
    """Block-diagonal ``(n, n)`` matrix of ring-sampled rotation–scaling blocks ``r [[cos φ, −sin φ], [sin φ, cos φ]]``.

    Its eigenvalues are ``r_i e^{±iφ_i}`` with ``(r_i, φ_i)`` from ``ring_sample``; an odd ``n``
    ends with a 1×1 block ``r`` (a real eigenvalue on the ring).

    Parameters
    ----------
    n : int
        Size of the matrix.
    r_min, r_max : float
        Radii of the ring, ``0 ≤ r_min ≤ r_max ≤ 1``.
    max_phase : float
        Largest argument ``φ``, in ``[0, 2π]``.
    rng : numpy.random.Generator
        The random generator.

    Returns
    -------
    numpy.ndarray
        The float64 ``(n, n)`` block-diagonal matrix.

    Raises
    ------
    ValueError
        For radii or ``max_phase`` out of range (as ``ring_sample``).
    """
    radius, phase = ring_sample((n + 1) // 2, r_min, r_max, max_phase, rng)
    return rotation_blocks(phase[: n // 2], radius, n)


class _LinearRNN(RecurrentModel):
    """Shared machinery of the linear models: ``h_t = A h_{t−1} + B u_t`` run by :func:`lyapkit.trainers.models.linear_scan`.

    Subclasses implement ``recurrence()``. With ``complex_units`` the hidden state ``h ∈ ℂ^H`` is
    stored as ``s = (Re h, Im h)``.
    """

    complex_units = False

    @abc.abstractmethod
    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The matrices ``(A, B)`` of ``h_t = A h_{t−1} + B u_t``.

        Returns
        -------
        A : torch.Tensor
            ``(H,)`` (diagonal) or ``(H, H)``; complex for complex units.
        B : torch.Tensor
            ``(H, input_size)``.
        """

    def eigenvalues(self) -> torch.Tensor:
        """The eigenvalues of ``A``; their logs ``log|λ|`` are the Lyapunov exponents.

        Returns
        -------
        torch.Tensor
            The ``H`` eigenvalues (the diagonal itself for a diagonal ``A``, else
            ``torch.linalg.eigvals(A)``, complex). For complex units each ``λ`` stands for the
            eigenvalue pair ``λ, λ̄`` of the real map.
        """
        A = self.recurrence()[0]
        return A if A.ndim == 1 else torch.linalg.eigvals(A)

    def _hidden(self, state: torch.Tensor) -> torch.Tensor:
        if not self.complex_units:
            return state
        return torch.complex(state[..., : self.hidden_size], state[..., self.hidden_size :])

    def _real(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h.real, h.imag], -1) if self.complex_units else h

    @staticmethod
    def _input(B: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if B.is_complex():
            return torch.complex(u @ B.real.T, u @ B.imag.T)
        return u @ B.T

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step ``h_t = A h_{t−1} + B u_t`` in the real state coordinates ``s``.

        Parameters
        ----------
        state : torch.Tensor
            The state ``s_{t−1}``, shape ``(..., state_size)`` (``(Re h, Im h)`` for complex units).
        u : torch.Tensor
            The input ``u_t``, shape ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            The next state ``s_t``, shape ``(..., state_size)``.
        """
        A, B = self.recurrence()
        h = self._hidden(state)
        h = A * h if A.ndim == 1 else h @ A.T
        return self._real(h + self._input(B, u))

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The states ``s_1 … s_T`` by :func:`lyapkit.trainers.models.linear_recurrence`.

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor
            The initial state ``s_0``, shape ``(batch, state_size)``.

        Returns
        -------
        torch.Tensor
            The states, shape ``(batch, T, state_size)``.
        """
        A, B = self.recurrence()
        return self._real(linear_recurrence(A, self._input(B, inputs), self._hidden(state)))

    def as_map(self) -> LinearMap:
        """A float64 :class:`lyapkit.LinearMap` ``s → A_s s + B_s u`` of the current weights.

        With ``(A, B) = recurrence()``: ``A_s = A`` (``diag(A)`` when diagonal) and ``B_s = B`` for real
        units; for complex units, in the coordinates ``s = (Re h, Im h)``::

            A_s = [[diag(Re λ), −diag(Im λ)],      B_s = [[Re B],
                   [diag(Im λ),  diag(Re λ)]]             [Im B]]

        (each unit's ``(Re h_j, Im h_j)`` sees the block ``[[Re λ_j, −Im λ_j], [Im λ_j, Re λ_j]]``), so
        every ``|λ_j|`` is the modulus of two eigenvalues ``λ_j, λ̄_j`` of ``A_s``.

        Returns
        -------
        lyapkit.LinearMap
            The map, of dimension ``state_size`` and input dimension ``input_size``; its exponents
            are ``log|eig(A_s)|``.
        """
        with torch.no_grad():
            A, B = self.recurrence()
            A = torch.diag(A) if A.ndim == 1 else A
            if self.complex_units:
                A = torch.cat([torch.cat([A.real, -A.imag], 1), torch.cat([A.imag, A.real], 1)])
                B = torch.cat([B.real, B.imag])
            return LinearMap(A.double().cpu().numpy(), B.double().cpu().numpy())


class ComplexDiagonalRNN(_LinearRNN):
    """Complex-diagonal linear RNN ``h_t = λ ⊙ h_{t−1} + γ(λ) ⊙ (B u_t)``, ``h ∈ ℂ^H``.

    The readout is ``y = Re(C h) + c`` (``+ D u`` with ``skip``); the state is stored as
    ``s = (Re h, Im h)`` (``state_size = 2 hidden_size``) and the Lyapunov exponents are
    ``log|λ_j|``, each twice.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` (complex units) and of ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).
    parametrization : {"exponential", "polar"}, default "exponential"
        How the trainable ``ν, θ`` (attributes ``nu``, ``theta``, shape ``(H,)``) give ``λ``:

        - ``"exponential"`` (LRU): ``λ = exp(−exp(ν) + i exp(θ))``, i.e. ``ν = log(−log|λ|)``,
          ``θ = log arg λ``; ``|λ| < 1`` for every finite ``ν``;
        - ``"polar"``: ``λ = ν e^{iθ}``, i.e. ``ν = |λ|``, ``θ = arg λ``.
    normalization : bool, default True
        Scale the input of unit ``j`` by ``γ_j = sqrt(1 − |λ_j|²)``, recomputed from ``λ`` in every
        forward pass (so it is differentiated too); otherwise ``γ = 1``. It keeps the stationary
        variance ``E|h_j|² = γ_j² Σ_k |B_jk|² / (1 − |λ_j|²) = Σ_k |B_jk|²`` for i.i.d. unit-variance
        inputs, whatever ``|λ_j|``; it needs ``|λ| ≤ 1`` (NaN otherwise, possible for ``"polar"``).
    r_min, r_max, max_phase : float, default 0, 1 and 2π
        Ring initialisation (Orvieto et al. 2023): ``|λ|² ~ U(r_min², r_max²)`` (uniform on the ring's
        area), ``arg λ ~ U(0, max_phase)``; ``0 ≤ r_min ≤ r_max ≤ 1``, ``0 ≤ max_phase ≤ 2π``.
    skip : bool, default False
        Add the skip term ``D u_t`` (``D`` ``(output_size, input_size)``, attribute ``skip``, torch's
        default ``nn.Linear`` initialisation) to the readout.
    seed : int or numpy.random.Generator, optional
        Seeds the ring and ``B`` samples; the readout follows torch's global RNG (which also seeds
        the samples when ``seed`` is None, so ``torch.manual_seed`` makes the model reproducible).

    Raises
    ------
    ValueError
        If ``parametrization`` is unknown; the radii are not ``0 ≤ r_min ≤ r_max ≤ 1`` or
        ``max_phase`` is not in ``[0, 2π]``; a sampled ``|λ|`` is 1 (``r_min = r_max = 1``) with
        the exponential parametrisation or normalisation, or 0 (``r_max = 0``) with the
        exponential parametrisation; ``seed`` is not an int, a Generator or None; or for bad sizes
        or ``readout``.

    See Also
    --------
    lyapkit.trainers.models.LRU : This model with the LRU's choices.
    lyapkit.theory.exponential_parametrization : The exponential parametrisation and its derivatives.

    Notes
    -----
    ``B = B_re + i B_im`` (attributes ``B_re``, ``B_im``, shape ``(H, input_size)``), initialised
    with i.i.d. ``N(0, 1/(2 input_size))`` entries, i.e. ``(standard normal + i standard normal) /
    sqrt(2 input_size)``, so ``E Σ_k |B_jk|² = 1``. The readout is the real affine map
    ``y = W (Re h, Im h) + c (+ D u)`` of the base class (``decoder``), which is
    ``y = Re(C h) + c (+ D u)`` with the complex ``C = W[:, :H] − i W[:, H:]``.

    References
    ----------
    .. [1] A. Orvieto, S. L. Smith, A. Gu, A. Fernando, C. Gulcehre, R. Pascanu and S. De,
       "Resurrecting recurrent neural networks for long sequences", ICML 2023 (arXiv:2303.06349).

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import ComplexDiagonalRNN
    >>> _ = torch.manual_seed(0)
    >>> model = ComplexDiagonalRNN(1, 4, 1, parametrization="polar", r_min=0.5, r_max=0.9, seed=0)
    >>> model.state_size, model.as_map().dim
    (8, 8)
    >>> radius = model.eigenvalues().abs()
    >>> bool(((radius >= 0.5) & (radius <= 0.9)).all())
    True
    >>> tuple(model(torch.randn(2, 6, 1)).shape)
    (2, 1)
    """

    complex_units = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        parametrization: Literal["exponential", "polar"] = "exponential",
        normalization: bool = True,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = TWO_PI,
        skip: bool = False,
        seed: Seed = None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            output_size,
            readout,
            state_size=2 * integer(hidden_size, "hidden_size", 1),
        )
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}"
            )
        self.parametrization = parametrization
        self.normalization = bool(normalization)
        rng = _rng(seed)
        radius, phase = ring_sample(self.hidden_size, r_min, r_max, max_phase, rng)
        if (parametrization == "exponential" or self.normalization) and radius.max() >= 1:
            raise ValueError(
                "r_max must be < 1 for the exponential parametrisation or with normalisation "
                f"(|λ| = 1 makes ν infinite and sqrt(1 − |λ|²) non-differentiable), got r_max={r_max!r}"
            )
        if parametrization == "exponential" and radius.min() <= 0:
            raise ValueError(
                f"r_max must be > 0 for the exponential parametrisation (|λ| = 0 makes ν infinite), got {r_max!r}"
            )
        if parametrization == "exponential":
            with np.errstate(divide="ignore"):  # arg λ = 0 gives θ = −∞, still exact
                radius, phase = np.log(-np.log(radius)), np.log(phase)
        self.nu, self.theta = _parameter(radius), _parameter(phase)
        B = rng.standard_normal((2, self.hidden_size, self.input_size)) / math.sqrt(
            2 * self.input_size
        )
        self.B_re, self.B_im = _parameter(B[0]), _parameter(B[1])
        self.skip = nn.Linear(self.input_size, self.output_size, bias=False) if skip else None

    def eigenvalues(self) -> torch.Tensor:
        """The eigenvalues ``λ`` from the parameters ``ν, θ``.

        ``λ = exp(−exp(ν) + i exp(θ))`` (exponential) or ``λ = ν e^{iθ}`` (polar).

        Returns
        -------
        torch.Tensor
            ``λ``, complex, shape ``(H,)`` (differentiable in ``ν, θ``).
        """
        if self.parametrization == "polar":
            return torch.polar(self.nu, self.theta)
        return torch.exp(torch.complex(-torch.exp(self.nu), torch.exp(self.theta)))

    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence ``(λ, γ(λ) ⊙ B)``, ``γ = sqrt(1 − |λ|²)`` under normalisation, else 1.

        Returns
        -------
        A : torch.Tensor
            ``λ``, complex, shape ``(H,)``.
        B : torch.Tensor
            ``γ(λ) ⊙ B`` (rows scaled), complex, shape ``(H, input_size)``.
        """
        lam, B = self.eigenvalues(), torch.complex(self.B_re, self.B_im)
        if self.normalization:
            B = B * torch.sqrt(1 - (lam.real**2 + lam.imag**2))[:, None]
        return lam, B

    def output(self, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The readout ``Re(C h) + c``, plus ``D u`` with ``skip``, on the last or every step.

        Parameters
        ----------
        states : torch.Tensor
            The states ``s = (Re h, Im h)``, shape ``(batch, T, state_size)``.
        inputs : torch.Tensor
            The inputs ``(batch, T, input_size)`` (for the skip term).

        Returns
        -------
        torch.Tensor
            ``(batch, output_size)`` for ``readout="last"``, else ``(batch, T, output_size)``.
        """
        y = super().output(states, inputs)
        if self.skip is None:
            return y
        return y + self.skip(inputs[:, -1] if self.readout == "last" else inputs)


class LRU(ComplexDiagonalRNN):
    """Linear Recurrent Unit (Orvieto et al. 2023): ``h_t = λ ⊙ h_{t−1} + γ(λ) ⊙ (B u_t)``, ``y_t = Re(C h_t) + D u_t + c``.

    A :class:`lyapkit.trainers.models.ComplexDiagonalRNN` with the exponential parametrisation
    ``λ = exp(−exp(ν) + i exp(θ))``, normalisation ``γ = sqrt(1 − |λ|²)``, ring initialisation and
    the skip term ``D u``. The defaults ``r_min = 0``, ``r_max = 1``, ``max_phase = 2π`` are those of
    the LRU paper's reference initialisation (its long-range tasks use e.g. ``r_min = 0.9``,
    ``r_max = 0.999``, ``max_phase = π/10``).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` (complex units; ``state_size = 2 hidden_size``) and of ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).
    r_min, r_max, max_phase : float, default 0, 1 and 2π
        Ring initialisation: ``|λ|² ~ U(r_min², r_max²)``, ``arg λ ~ U(0, max_phase)``;
        ``0 ≤ r_min ≤ r_max ≤ 1``, ``0 ≤ max_phase ≤ 2π``.
    seed : int or numpy.random.Generator, optional
        Seeds the ring and ``B`` samples (default: drawn from torch's global RNG); the readout and
        ``D`` follow torch's global RNG.

    Raises
    ------
    ValueError
        For radii or ``max_phase`` out of range, a bad ``seed``, sizes or ``readout`` (as
        :class:`lyapkit.trainers.models.ComplexDiagonalRNN`).

    See Also
    --------
    lyapkit.trainers.models.ComplexDiagonalRNN : The general complex-diagonal model.
    lyapkit.theory.lru_ring_variance : The stationary variance at ring initialisation.

    References
    ----------
    .. [1] A. Orvieto, S. L. Smith, A. Gu, A. Fernando, C. Gulcehre, R. Pascanu and S. De,
       "Resurrecting recurrent neural networks for long sequences", ICML 2023 (arXiv:2303.06349).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from lyapkit.trainers.models import LRU
    >>> _ = torch.manual_seed(0)
    >>> lru = LRU(2, 8, 1, r_min=0.9, r_max=0.999, max_phase=np.pi / 10, seed=0)
    >>> lam = lru.eigenvalues().detach()
    >>> bool(lam.abs().min() >= 0.9), bool(lam.angle().max() <= np.pi / 10)
    (True, True)
    >>> x = torch.randn(3, 20, 2)
    >>> tuple(lru(x).shape)
    (3, 1)
    >>> with lru.reference_path():
    ...     looped = lru(x)
    >>> bool(torch.allclose(lru(x), looped, atol=1e-5))
    True
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = TWO_PI,
        seed: Seed = None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            output_size,
            readout,
            parametrization="exponential",
            normalization=True,
            r_min=r_min,
            r_max=r_max,
            max_phase=max_phase,
            skip=True,
            seed=seed,
        )


class _RealLinearRNN(_LinearRNN):
    """A real linear RNN whose input matrix ``B`` (attribute ``B``) has i.i.d. ``N(0, 1/input_size)`` entries."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"],
        rng: np.random.Generator,
    ):
        super().__init__(input_size, hidden_size, output_size, readout)
        shape = (self.hidden_size, self.input_size)
        self.B = _parameter(rng.standard_normal(shape) / math.sqrt(self.input_size))


class RealDiagonalRNN(_RealLinearRNN):
    """Real-diagonal linear RNN ``h_t = a ⊙ h_{t−1} + B u_t``.

    ``a`` (attribute ``a``, trainable) is initialised ``a_j ~ U(r_min, r_max)``,
    ``0 ≤ r_min ≤ r_max ≤ 1``; ``B ~ N(0, 1/input_size)`` entrywise. The readout is the base class's
    affine ``y = C h + c``. ``seed`` seeds ``a`` and ``B``. The exponents are ``log|a_j|``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` and of ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).
    r_min, r_max : float, default 0 and 1
        Range of the initial ``a_j``, ``0 ≤ r_min ≤ r_max ≤ 1``.
    seed : int or numpy.random.Generator, optional
        Seeds ``a`` and ``B`` (default: drawn from torch's global RNG); the readout follows torch's
        global RNG.

    Raises
    ------
    ValueError
        If the radii are not ``0 ≤ r_min ≤ r_max ≤ 1``, ``seed`` is not an int, a Generator or None,
        or for bad sizes or ``readout``.

    See Also
    --------
    lyapkit.trainers.models.ComplexDiagonalRNN : The complex-diagonal counterpart.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding
       gradients are not the end of the story", NeurIPS 2024 (arXiv:2405.21064).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from lyapkit.trainers.models import RealDiagonalRNN
    >>> _ = torch.manual_seed(0)
    >>> model = RealDiagonalRNN(1, 3, 1, r_min=0.5, r_max=0.9, seed=0)
    >>> np.round(model.a.detach().numpy(), 3)
    array([0.507, 0.825, 0.865], dtype=float32)
    >>> tuple(model(torch.randn(2, 6, 1)).shape)
    (2, 1)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        r_min: float = 0.0,
        r_max: float = 1.0,
        seed: Seed = None,
    ):
        r_min, r_max = _check_radii(r_min, r_max)
        rng = _rng(seed)
        super().__init__(input_size, hidden_size, output_size, readout, rng)
        self.a = _parameter(rng.uniform(r_min, r_max, self.hidden_size))

    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence ``(a, B)`` of ``h_t = a ⊙ h_{t−1} + B u_t``.

        Returns
        -------
        A : torch.Tensor
            The diagonal ``a``, shape ``(H,)``.
        B : torch.Tensor
            The input matrix, shape ``(H, input_size)``.
        """
        return self.a, self.B


class BlockDiagonalRNN(_RealLinearRNN):
    """2×2 block-diagonal linear RNN ``h_t = blockdiag(M_1, …, M_{H/2}) h_{t−1} + B u_t``.

    The blocks ``M_k`` (attribute ``blocks``, ``(H/2, 2, 2)``) are free trainable 2×2 matrices,
    initialised as the rotation–scaling blocks ``r_k [[cos φ_k, −sin φ_k], [sin φ_k, cos φ_k]]`` of
    ``ring_blocks`` (eigenvalues ``r_k e^{±iφ_k}`` on the ring ``r_min ≤ r ≤ r_max``,
    ``0 ≤ φ ≤ max_phase``). ``hidden_size`` must be even. ``B ~ N(0, 1/input_size)`` entrywise;
    readout ``y = C h + c``. ``seed`` seeds the blocks and ``B``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` and of ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).
    r_min, r_max, max_phase : float, default 0, 1 and 2π
        Ring of the initial eigenvalues ``r_k e^{±iφ_k}``: ``r_k² ~ U(r_min², r_max²)``,
        ``φ_k ~ U(0, max_phase)``; ``0 ≤ r_min ≤ r_max ≤ 1``, ``0 ≤ max_phase ≤ 2π``.
    seed : int or numpy.random.Generator, optional
        Seeds the blocks and ``B`` (default: drawn from torch's global RNG).

    Raises
    ------
    ValueError
        If ``hidden_size`` is odd, the radii or ``max_phase`` are out of range, ``seed`` is not an
        int, a Generator or None, or for bad sizes or ``readout``.

    See Also
    --------
    lyapkit.trainers.models.DenseLinearRNN : The dense counterpart.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding
       gradients are not the end of the story", NeurIPS 2024 (arXiv:2405.21064).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from lyapkit.trainers.models import BlockDiagonalRNN
    >>> _ = torch.manual_seed(0)
    >>> model = BlockDiagonalRNN(1, 4, 1, r_min=0.8, r_max=0.9, seed=0)
    >>> tuple(model.blocks.shape)
    (2, 2, 2)
    >>> np.round(model.eigenvalues().abs().detach().numpy(), 3)
    array([0.882, 0.882, 0.892, 0.892], dtype=float32)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = TWO_PI,
        seed: Seed = None,
    ):
        if integer(hidden_size, "hidden_size", 1) % 2:
            raise ValueError(f"hidden_size must be even for 2×2 blocks, got {hidden_size!r}")
        rng = _rng(seed)
        super().__init__(input_size, hidden_size, output_size, readout, rng)
        k = self.hidden_size // 2
        R = ring_blocks(self.hidden_size, r_min, r_max, max_phase, rng).reshape(k, 2, k, 2)
        self.blocks = _parameter(np.einsum("iaib->iab", R))

    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence ``(blockdiag(blocks), B)``.

        Returns
        -------
        A : torch.Tensor
            The dense ``(H, H)`` block-diagonal matrix.
        B : torch.Tensor
            The input matrix, shape ``(H, input_size)``.
        """
        k = self.blocks.shape[0]
        eye = torch.eye(k, dtype=self.blocks.dtype, device=self.blocks.device)
        A = torch.einsum("ij,iab->iajb", eye, self.blocks).reshape(2 * k, 2 * k)
        return A, self.B


class DenseLinearRNN(_RealLinearRNN):
    """Dense linear RNN ``h_t = A h_{t−1} + B u_t``.

    ``A`` (attribute ``A``, trainable) is initialised as ``O · R · Oᵀ`` with ``O`` Haar-orthogonal and
    ``R`` ring-sampled rotation–scaling blocks (as :class:`lyapkit.trainers.models.BlockDiagonalRNN`'s),
    so the eigenvalues of ``A``
    are ``r_k e^{±iφ_k}`` with moduli on the ring ``r_min ≤ r ≤ r_max`` (and arguments within
    ``±max_phase``). ``B ~ N(0, 1/input_size)`` entrywise; readout ``y = C h + c``. ``seed`` seeds
    ``A`` and ``B``.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` and of ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).
    r_min, r_max, max_phase : float, default 0, 1 and 2π
        Ring of the initial eigenvalues: ``r² ~ U(r_min², r_max²)``, ``φ ~ U(0, max_phase)``;
        ``0 ≤ r_min ≤ r_max ≤ 1``, ``0 ≤ max_phase ≤ 2π``.
    seed : int or numpy.random.Generator, optional
        Seeds ``A`` and ``B`` (default: drawn from torch's global RNG).

    Raises
    ------
    ValueError
        If the radii or ``max_phase`` are out of range, ``seed`` is not an int, a Generator or None,
        or for bad sizes or ``readout``.

    See Also
    --------
    lyapkit.trainers.models.linear_teacher : The frozen dense teacher of the curse-of-memory task.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding
       gradients are not the end of the story", NeurIPS 2024 (arXiv:2405.21064).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from lyapkit.trainers.models import DenseLinearRNN
    >>> _ = torch.manual_seed(0)
    >>> model = DenseLinearRNN(1, 4, 1, r_min=0.8, r_max=0.9, seed=0)
    >>> np.round(np.sort(model.eigenvalues().abs().detach().numpy()), 3)
    array([0.882, 0.882, 0.892, 0.892], dtype=float32)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = TWO_PI,
        seed: Seed = None,
    ):
        rng = _rng(seed)
        super().__init__(input_size, hidden_size, output_size, readout, rng)
        R = ring_blocks(self.hidden_size, r_min, r_max, max_phase, rng)
        O = random_orthogonal(self.hidden_size, rng)  # noqa: E741
        self.A = _parameter(O @ R @ O.T)

    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrence ``(A, B)`` of ``h_t = A h_{t−1} + B u_t``.

        Returns
        -------
        A : torch.Tensor
            The dense recurrent matrix, shape ``(H, H)``.
        B : torch.Tensor
            The input matrix, shape ``(H, input_size)``.
        """
        return self.A, self.B


def linear_teacher(
    input_size: int = 1,
    hidden_size: int = 10,
    output_size: int = 1,
    nu0: float = 0.9,
    readout: Literal["last", "sequence"] = "sequence",
    seed: Seed = None,
) -> DenseLinearRNN:
    """The dense linear teacher RNN of the curse-of-memory teacher–student task (Zucchet & Orvieto 2024).

    A :class:`lyapkit.trainers.models.DenseLinearRNN` ``h_t = A h_{t−1} + B u_t``, ``y_t = C h_t`` whose eigenvalues
    ``r e^{±iφ}`` come in complex-conjugate pairs (a real one for odd ``hidden_size``) with moduli
    ``|λ|² ~ U(nu0², 1)``, so ``nu0 ≤ |λ| < 1``, and ``φ ~ U(0, 2π)``; ``B ~ N(0, 1/input_size)``,
    ``C ~ N(0, 1/hidden_size)`` entrywise, ``c = 0``. All drawn from ``seed`` (same seed, same
    teacher); every parameter is frozen (``requires_grad = False``). ``nu0 → 1`` lengthens its memory.

    Parameters
    ----------
    input_size : int, default 1
        Dimension of ``u_t``.
    hidden_size : int, default 10
        Dimension of ``h_t``.
    output_size : int, default 1
        Dimension of ``y_t``.
    nu0 : float, default 0.9
        Smallest eigenvalue modulus, in ``[0, 1)``.
    readout : {"last", "sequence"}, default "sequence"
        Read out the last state or every state.
    seed : int or numpy.random.Generator, optional
        Seeds every draw (default: drawn from torch's global RNG).

    Returns
    -------
    lyapkit.trainers.models.DenseLinearRNN
        The frozen teacher.

    Raises
    ------
    ValueError
        If ``nu0`` is not in ``[0, 1)``, ``seed`` is not an int, a Generator or None, or for bad
        sizes or ``readout``.

    See Also
    --------
    lyapkit.trainers.tasks.teacher_student : The teacher–student regression task.
    lyapkit.theory.teacher_student_loss : Its loss landscape in one dimension.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding
       gradients are not the end of the story", NeurIPS 2024 (arXiv:2405.21064).

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import linear_teacher
    >>> teacher = linear_teacher(hidden_size=6, nu0=0.9, seed=0)
    >>> bool(teacher.eigenvalues().abs().min() >= 0.9)
    True
    >>> any(p.requires_grad for p in teacher.parameters())
    False
    >>> tuple(teacher(torch.randn(2, 7, 1)).shape)
    (2, 7, 1)
    """
    nu0 = number(nu0, "nu0", non_negative=True, below=1)
    rng = _rng(seed)
    teacher = DenseLinearRNN(
        input_size, hidden_size, output_size, readout, r_min=nu0, r_max=1.0, seed=rng
    )
    with torch.no_grad():
        C = rng.standard_normal((teacher.output_size, teacher.hidden_size)) / math.sqrt(
            teacher.hidden_size
        )
        teacher.decoder.weight.copy_(torch.as_tensor(C))
        teacher.decoder.bias.zero_()
    return teacher.requires_grad_(False)
