"""Linear recurrent networks: complex-diagonal (LRU), real-diagonal, 2×2 block-diagonal and dense.

Every model runs the linear recurrence ``h_t = A h_{t−1} + B u_t`` (A diagonal, block-diagonal or
dense; complex for complex units) with :func:`linear_recurrence` (the parallel scan
:func:`linear_scan`, or for a diagonal ``A`` on the CPU a tape-free loop), and is a
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

from lyapkit.maps import LinearMap
from lyapkit.trainers.models.base import RecurrentModel, positive_int
from lyapkit.trainers.models.residuals import random_orthogonal, rotation_blocks

TWO_PI = 2 * math.pi
PARAMETRIZATIONS = ("exponential", "polar")

Seed = int | np.random.Generator | None


def _check_recurrence(
    decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor | None
) -> torch.dtype:
    """Validate the arguments of :func:`linear_scan`; return the promoted dtype."""
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

    Notes
    -----
    Hillis–Steele doubling: starting from ``y = x``, level ``k = 0, 1, …`` adds ``A^{2^k}`` applied to
    ``y`` shifted by ``2^k`` steps, ``y_t ← y_t + A^{2^k} y_{t−2^k}``; after level ``k``
    ``y_t = Σ_{s = t−2^{k+1}+1}^{t} A^{t−s} x_s``, so ``⌈log₂ T⌉`` levels give ``y_t = h_t``. The
    powers come by repeated squaring. A nonzero ``h_0`` is scanned as an extra leading drive element.
    Each level is out-of-place and vectorised over time, so autograd differentiates through it.
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
    nodes) and as the parallel :func:`linear_scan` on other devices.
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
    """``h_t = A h_{t−1} + x_t`` as :func:`linear_scan` (same arguments), by the fastest exact route.

    A diagonal ``A`` runs :class:`_DiagonalRecurrence` (a tape-free loop on the CPU, where the
    scan's ``O(T log T)`` work is about seven times slower; the parallel scan elsewhere); a dense ``A`` runs
    the parallel scan, whose ``⌈log₂ T⌉`` large matrix products beat ``T`` small ones everywhere.
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

    Returns ``(radius, phase)``: ``|λ|² ~ U(r_min², r_max²)`` (uniform in area, Orvieto et al.
    2023) and ``arg λ ~ U(0, max_phase)``, independently.
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

    Its eigenvalues are ``r_i e^{±iφ_i}`` with ``(r_i, φ_i)`` from :func:`ring_sample`; an odd ``n``
    ends with a 1×1 block ``r`` (a real eigenvalue on the ring).
    """
    radius, phase = ring_sample((n + 1) // 2, r_min, r_max, max_phase, rng)
    return rotation_blocks(phase[: n // 2], radius, n)


class _LinearRNN(RecurrentModel):
    """Shared machinery of the linear models: ``h_t = A h_{t−1} + B u_t`` run by :func:`linear_scan`.

    Subclasses implement :meth:`recurrence`. With ``complex_units`` the hidden state ``h ∈ ℂ^H`` is
    stored as ``s = (Re h, Im h)``.
    """

    complex_units = False

    @abc.abstractmethod
    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` of ``h_t = A h_{t−1} + B u_t``: ``A`` ``(H,)`` (diagonal) or ``(H, H)``, ``B`` ``(H, input_size)``."""

    def eigenvalues(self) -> torch.Tensor:
        """The eigenvalues of ``A`` (for complex units: the ``H`` complex ``λ``, each the
        eigenvalue pair ``λ, λ̄`` of the real map)."""
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
        """``s_t`` from ``h_t = A h_{t−1} + B u_t`` on ``state`` ``(..., state_size)``, ``u`` ``(..., input_size)``."""
        A, B = self.recurrence()
        h = self._hidden(state)
        h = A * h if A.ndim == 1 else h @ A.T
        return self._real(h + self._input(B, u))

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``s_1 … s_T`` ``(batch, T, state_size)`` by :func:`linear_recurrence`."""
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

    Parameters
    ----------
    input_size, hidden_size, output_size, readout
        As for :class:`~lyapkit.trainers.models.base.RecurrentModel`; the state is ``s = (Re h, Im h)``
        (``state_size = 2 hidden_size``).
    parametrization : {"exponential", "polar"}
        How the trainable ``ν, θ`` (attributes ``nu``, ``theta``, shape ``(H,)``) give ``λ``:

        - ``"exponential"`` (LRU): ``λ = exp(−exp(ν) + i exp(θ))``, i.e. ``ν = log(−log|λ|)``,
          ``θ = log arg λ``; ``|λ| < 1`` for every finite ``ν``;
        - ``"polar"``: ``λ = ν e^{iθ}``, i.e. ``ν = |λ|``, ``θ = arg λ``.
    normalization : bool
        Scale the input of unit ``j`` by ``γ_j = sqrt(1 − |λ_j|²)``, recomputed from ``λ`` in every
        forward pass (so it is differentiated too); otherwise ``γ = 1``. It keeps the stationary
        variance ``E|h_j|² = γ_j² Σ_k |B_jk|² / (1 − |λ_j|²) = Σ_k |B_jk|²`` for i.i.d. unit-variance
        inputs, whatever ``|λ_j|``; it needs ``|λ| ≤ 1`` (NaN otherwise, possible for ``"polar"``).
    r_min, r_max, max_phase : float
        Ring initialisation (Orvieto et al. 2023): ``|λ|² ~ U(r_min², r_max²)`` (uniform on the ring's
        area), ``arg λ ~ U(0, max_phase)``; ``0 ≤ r_min ≤ r_max ≤ 1``, ``0 ≤ max_phase ≤ 2π``.
    skip : bool
        Add the skip term ``D u_t`` (``D`` ``(output_size, input_size)``, attribute ``skip``, torch's
        default ``nn.Linear`` initialisation) to the readout.
    seed : int or numpy.random.Generator, optional
        Seeds the ring and ``B`` samples; the readout follows torch's global RNG.

    Notes
    -----
    ``B = B_re + i B_im`` (attributes ``B_re``, ``B_im``, shape ``(H, input_size)``), initialised
    with i.i.d. ``N(0, 1/(2 input_size))`` entries, i.e. ``(standard normal + i standard normal) /
    sqrt(2 input_size)``, so ``E Σ_k |B_jk|² = 1``. The readout is the real affine map
    ``y = W (Re h, Im h) + c (+ D u)`` of the base class (``decoder``), which is
    ``y = Re(C h) + c (+ D u)`` with the complex ``C = W[:, :H] − i W[:, H:]``.
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
            state_size=2 * positive_int(hidden_size, "hidden_size"),
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
        """``λ`` ``(H,)`` from the parameters ``ν, θ``."""
        if self.parametrization == "polar":
            return torch.polar(self.nu, self.theta)
        return torch.exp(torch.complex(-torch.exp(self.nu), torch.exp(self.theta)))

    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(λ, γ(λ) ⊙ B)`` with ``γ = sqrt(1 − |λ|²)`` under normalisation, else 1."""
        lam, B = self.eigenvalues(), torch.complex(self.B_re, self.B_im)
        if self.normalization:
            B = B * torch.sqrt(1 - (lam.real**2 + lam.imag**2))[:, None]
        return lam, B

    def output(self, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``Re(C h) + c``, plus ``D u`` with ``skip``, on the last or every step."""
        y = super().output(states, inputs)
        if self.skip is None:
            return y
        return y + self.skip(inputs[:, -1] if self.readout == "last" else inputs)


class LRU(ComplexDiagonalRNN):
    """Linear Recurrent Unit (Orvieto et al. 2023): ``h_t = λ ⊙ h_{t−1} + γ(λ) ⊙ (B u_t)``, ``y_t = Re(C h_t) + D u_t + c``.

    A :class:`ComplexDiagonalRNN` with the exponential parametrisation
    ``λ = exp(−exp(ν) + i exp(θ))``, normalisation ``γ = sqrt(1 − |λ|²)``, ring initialisation and
    the skip term ``D u``. The defaults ``r_min = 0``, ``r_max = 1``, ``max_phase = 2π`` are those of
    the LRU paper's reference initialisation (its long-range tasks use e.g. ``r_min = 0.9``,
    ``r_max = 0.999``, ``max_phase = π/10``).
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
    affine ``y = C h + c``. ``seed`` seeds ``a`` and ``B``.
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
        """``(a, B)``."""
        return self.a, self.B


class BlockDiagonalRNN(_RealLinearRNN):
    """2×2 block-diagonal linear RNN ``h_t = blockdiag(M_1, …, M_{H/2}) h_{t−1} + B u_t``.

    The blocks ``M_k`` (attribute ``blocks``, ``(H/2, 2, 2)``) are free trainable 2×2 matrices,
    initialised as the rotation–scaling blocks ``r_k [[cos φ_k, −sin φ_k], [sin φ_k, cos φ_k]]`` of
    :func:`ring_blocks` (eigenvalues ``r_k e^{±iφ_k}`` on the ring ``r_min ≤ r ≤ r_max``,
    ``0 ≤ φ ≤ max_phase``). ``hidden_size`` must be even. ``B ~ N(0, 1/input_size)`` entrywise;
    readout ``y = C h + c``. ``seed`` seeds the blocks and ``B``.
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
        if positive_int(hidden_size, "hidden_size") % 2:
            raise ValueError(f"hidden_size must be even for 2×2 blocks, got {hidden_size!r}")
        rng = _rng(seed)
        super().__init__(input_size, hidden_size, output_size, readout, rng)
        k = self.hidden_size // 2
        R = ring_blocks(self.hidden_size, r_min, r_max, max_phase, rng).reshape(k, 2, k, 2)
        self.blocks = _parameter(np.einsum("iaib->iab", R))

    def recurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(blockdiag(blocks), B)`` with the dense ``(H, H)`` block-diagonal matrix."""
        k = self.blocks.shape[0]
        eye = torch.eye(k, dtype=self.blocks.dtype, device=self.blocks.device)
        A = torch.einsum("ij,iab->iajb", eye, self.blocks).reshape(2 * k, 2 * k)
        return A, self.B


class DenseLinearRNN(_RealLinearRNN):
    """Dense linear RNN ``h_t = A h_{t−1} + B u_t``.

    ``A`` (attribute ``A``, trainable) is initialised as ``O · R · Oᵀ`` with ``O`` Haar-orthogonal and
    ``R`` the ring-sampled rotation–scaling blocks of :func:`ring_blocks`, so the eigenvalues of ``A``
    are ``r_k e^{±iφ_k}`` with moduli on the ring ``r_min ≤ r ≤ r_max`` (and arguments within
    ``±max_phase``). ``B ~ N(0, 1/input_size)`` entrywise; readout ``y = C h + c``. ``seed`` seeds
    ``A`` and ``B``.
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
        """``(A, B)``."""
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

    A :class:`DenseLinearRNN` ``h_t = A h_{t−1} + B u_t``, ``y_t = C h_t`` whose eigenvalues
    ``r e^{±iφ}`` come in complex-conjugate pairs (a real one for odd ``hidden_size``) with moduli
    ``|λ|² ~ U(nu0², 1)``, so ``nu0 ≤ |λ| < 1``, and ``φ ~ U(0, 2π)``; ``B ~ N(0, 1/input_size)``,
    ``C ~ N(0, 1/hidden_size)`` entrywise, ``c = 0``. All drawn from ``seed`` (same seed, same
    teacher); every parameter is frozen (``requires_grad = False``). ``nu0 → 1`` lengthens its memory.
    """
    if not 0 <= nu0 < 1:
        raise ValueError(f"nu0 must be in [0, 1), got {nu0!r}")
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
