"""Shared cases of the test modules: small models, data and operators with known answers.

torch is imported inside the functions that need it, so modules that use only the numpy cases run
without it.
"""

from __future__ import annotations

import numpy as np


def wcrnn(seed=0, readout="last", hidden=3, gamma=0.4):
    """A float64 WCRNN (2 inputs, 2 outputs) with a random orthogonal residual of radius 0.9."""
    import torch

    from lyapkit.trainers.models import WCRNN

    torch.manual_seed(seed)
    R = 0.9 * torch.linalg.qr(torch.randn(hidden, hidden))[0]
    return WCRNN(2, hidden, 2, readout, residual=R, gamma=gamma).double()


def sequences(seed=1, batch=4, T=5, classes=2, readout="last"):
    """Float64 input sequences ``(batch, T, 2)`` and class labels (one per sequence or step)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, 2, generator=g, dtype=torch.float64)
    shape = (batch,) if readout == "last" else (batch, T)
    return x, torch.randint(0, classes, shape, generator=g)


def random_symmetric(P, seed=0):
    """A symmetric ``(P, P)`` matrix with three eigenvalues in [5, 10] and the rest near 0, and
    its eigenvalues."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((P, P)))[0]
    eig = np.concatenate([rng.uniform(5, 10, 3), rng.normal(0, 0.3, P - 3)])
    return (Q * eig) @ Q.T, eig


def dense_operator(M, *, torch_dtype=None, kind="operator"):
    """``M`` as a :class:`lyapkit.LinearOperator` on two parameters ``a`` (the first two entries,
    shape (2,)) and ``b`` (the rest, flattened); numpy products, or torch ones of ``torch_dtype``."""
    import lyapkit as lk

    class Dense(lk.LinearOperator):
        def __init__(self):
            P = len(M)
            device = None
            if torch_dtype is not None:
                import torch

                self.M, device = torch.as_tensor(M, dtype=torch_dtype), torch.device("cpu")
            else:
                self.M = np.asarray(M, dtype=np.float64)
            self.symmetric = bool(np.allclose(M, np.transpose(M)))
            self._set_parameters(
                ["a", "b"], [(2,), (P - 2,)], kind=kind,
                dtype=torch_dtype or np.float64, device=device,
            )  # fmt: skip

        def _matmat(self, V):
            return self.M @ V

        def _rmatmat(self, V):
            return self.M.T @ V

    return Dense()
