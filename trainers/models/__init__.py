"""Trainable recurrent models of the two source papers; each is also a lyapkit map (``model.as_map()``).

The WCRNN family (linear-residual, type A, type B) with its residual constructors
(:mod:`lyapkit.trainers.models.residuals`); the Elman RNN (with the weakly coupled residual
initialisation), LSTM and GRU on PyTorch's fused kernels; and the linear recurrences of the
curse-of-memory paper (LRU, complex- and real-diagonal, 2×2 block-diagonal, dense, and the dense
linear teacher).
"""

from lyapkit.trainers.models import residuals
from lyapkit.trainers.models.base import RecurrentModel
from lyapkit.trainers.models.gated import GRU, LSTM, ElmanRNN, ResidualInit
from lyapkit.trainers.models.linear import (
    LRU,
    BlockDiagonalRNN,
    ComplexDiagonalRNN,
    DenseLinearRNN,
    RealDiagonalRNN,
    linear_recurrence,
    linear_scan,
    linear_teacher,
)
from lyapkit.trainers.models.wcrnn import WCRNN

__all__ = [
    "RecurrentModel",
    "WCRNN",
    "residuals",
    "ElmanRNN",
    "ResidualInit",
    "LSTM",
    "GRU",
    "LRU",
    "ComplexDiagonalRNN",
    "RealDiagonalRNN",
    "BlockDiagonalRNN",
    "DenseLinearRNN",
    "linear_teacher",
    "linear_recurrence",
    "linear_scan",
]
