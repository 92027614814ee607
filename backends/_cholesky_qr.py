"""When CholeskyQR may replace Householder QR: the policy shared by the torch and numba backends.

A tangent basis ``Q̃`` (n × k) is factored ``Q̃ = Q R`` with ``diag R ≥ 0`` by

1. **CholeskyQR**: ``G = Q̃ᵀQ̃ = UᵀU`` (Cholesky), ``Q = Q̃ U⁻¹``, ``R = U`` — all BLAS-3, hence
   faster than Householder QR for the bases of RNN spectra. Cholesky is invariant to column
   scaling, so the accuracy is governed not by the (harmless) grading ``max R_ii / min R_ii`` of a
   tangent basis but by how close a column comes to the span of the previous ones: with
   ``s_i = U_ii / ‖q̃_i‖`` (the sine of that angle), the relative error of ``U_ii`` is about
   ``ε / s_i²``. One pass is accepted while every ``s_i² > ε^(1/3)`` (error at most ``ε^(2/3)``,
   4e-11 in float64, and usually far less), which keeps the backends within 1e-9 of each other. The loss of orthogonality of ``Q`` does not accumulate in the
   exponents: the next step factors the Gram matrix of the basis it actually has.
2. **A second pass on the trailing columns** otherwise (CholeskyQR2, Fukaya, Nakatsukasa,
   Yanagisawa & Yamamoto 2014; Yamamoto et al. 2015, ETNA 44), while every ``s_i² > 100 k ε`` —
   then ``Q₁ = Q̃ U⁻¹`` is orthonormal to about ``1 / (100 k)`` and its own Cholesky is sound.
   The columns before the first one with ``s_i² ≤ ε^(1/3)`` keep their one-pass accuracy; the later
   ones are projected out of the earlier ones and factored again, ``Q₁,tail = Q U₂``, so their
   ``R_ii = (U₂)_ii (U₁)_ii`` (the diagonal of a product of upper triangular matrices is the
   product of the diagonals) with column-wise backward error ``O(ε)`` like Householder QR, i.e.
   relative error ``ε / s_i``. In tangent bases the offending columns are the most contracted
   ones (a 128-unit tanh network at g = 2: 92% of the steps, the first offending column among
   the last eight), so the second pass costs little.
3. **Householder QR** of ``Q̃`` when a Cholesky factorisation fails or a sine is smaller still
   (``U₁`` may then be garbage and ``Q₁`` far from orthonormal). When only the second pass fails,
   it factors ``Q₁`` (well conditioned by the bound above) and multiplies ``diag R`` by
   ``diag U₁``.
"""

from __future__ import annotations

#: Bases with fewer rows use Householder QR directly (cheaper than three BLAS calls).
CHOLESKY_QR_MIN_DIM = 16
#: How a basis was re-orthonormalised.
ONE_PASS, TWO_PASSES, HOUSEHOLDER = 0, 1, 2


def one_pass_min_sine2(eps: float) -> float:
    """Smallest ``s_i²`` at which one CholeskyQR pass is accurate enough: ``ε^(1/3)``."""
    return eps ** (1 / 3)


def two_pass_min_sine2(eps: float, k: int) -> float:
    """Smallest first-pass ``s_i²`` at which a second pass (CholeskyQR2) is sound: ``100 k ε``."""
    return 100.0 * k * eps
