"""When CholeskyQR may replace Householder QR: the policy shared by the torch and numba backends.

A tangent basis ``Q̃`` (n × k) is factored ``Q̃ = Q R`` with ``diag R ≥ 0`` by

1. **CholeskyQR**: ``G = Q̃ᵀQ̃ = UᵀU`` (Cholesky), ``Q = Q̃ U⁻¹``, ``R = U`` — all BLAS-3, hence
   faster than Householder QR for the bases of RNN spectra. The columns are first scaled by exact
   powers of two, so that ``G`` neither under- nor overflows. A column ``i`` of the pass is
   accepted when two things hold:

   - its sine to the span of the previous columns, ``s_i = U_ii / ‖q̃_i‖``, has
     ``s_i² > ε^(1/3)``: the relative error of ``U_ii`` is about ``ε / s_i²``, so at most
     ``ε^(2/3)`` (4e-11 in float64);
   - its norm is right, ``|‖q_i‖² − 1| ≤ ε^(2/3)``. Sines alone do not bound the conditioning
     (``J = aI + N`` with a nilpotent ``N`` has every sine near ``a`` and a condition number
     growing like ``a^(1−k)``), and the loss of orthonormality of ``Q`` is the error the
     cumulative sums ``Σ log R_ii`` carry: it does not accumulate (the next step factors the
     Gram matrix of the basis it actually has), but it is there at every step.
2. **A second pass on the trailing columns**, from the first one not accepted (CholeskyQR2,
   Fukaya, Nakatsukasa, Yanagisawa & Yamamoto 2014; Yamamoto et al. 2015, ETNA 44): they are
   projected out of the accepted ones and factored again, ``Q₁,tail = Q U₂``, so their
   ``R_ii = (U₂)_ii (U₁)_ii`` (the diagonal of a product of upper triangular matrices is the
   product of the diagonals), with column-wise backward error ``O(ε)`` like Householder QR. It is
   taken only while every ``s_i² > 100 k ε`` (otherwise ``U₁`` may be garbage), and accepted by
   the same two tests. In tangent bases the offending columns are the most contracted ones (a
   128-unit tanh network at g = 2: nearly every step, the first offending column among the last
   ten or so), so the second pass costs little.
3. **Householder QR** of ``Q̃`` otherwise.
"""

from __future__ import annotations

#: Bases with fewer rows use Householder QR directly (cheaper than three BLAS calls).
CHOLESKY_QR_MIN_DIM = 16
#: How a basis was re-orthonormalised.
ONE_PASS, TWO_PASSES, HOUSEHOLDER = 0, 1, 2


def one_pass_min_sine2(eps: float) -> float:
    """Smallest ``s_i²`` at which one CholeskyQR pass is accurate enough: ``ε^(1/3)``."""
    return eps ** (1 / 3)


def max_norm_deviation(eps: float) -> float:
    """Largest ``|‖q_i‖² − 1|`` of a column of ``Q`` accepted from a pass: ``ε^(2/3)``."""
    return eps ** (2 / 3)


def two_pass_min_sine2(eps: float, k: int) -> float:
    """Smallest first-pass ``s_i²`` at which a second pass (CholeskyQR2) is sound: ``100 k ε``."""
    return 100.0 * k * eps
