"""Shared cases of the test modules: small models, data and operators with known answers.

torch is imported inside the functions that need it, so modules that use only the numpy cases run
without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lyapkit as lk

#: The built-in backends, and those of them whose libraries are installed here.
BUILTIN_BACKENDS = ("numpy", "numba", "torch")
INSTALLED = [b for b in BUILTIN_BACKENDS if b in lk.available_backends()]
#: The built-in backends as ``parametrize`` values, each skipped where its library is missing.
BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(b not in INSTALLED, reason=f"{b} not installed"))
    for b in BUILTIN_BACKENDS
]


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


#: A small adding-problem run (20 steps, checkpoints every 10): ``write_config`` fills it in.
CONFIG = """
[run]
name = "small"
dir = "{dir}"
seed = {seed}
threads = {threads}

[task]
name = "adding"
T = 16
n_train = 256
n_test = 64

[model]
name = "WCRNN"
hidden_size = {hidden}
gamma = 0.1
residual = {{ kind = "homogeneous", r = 0.95 }}

[optimizer]
name = "sgd"
lr = {lr}
momentum = 0.9
clip_grad_norm = 1.0

[training]
steps = {steps}
batch_size = 32
eval_every = 10
checkpoint_every = {checkpoint_every}

[diagnostics.lyapunov]
every = 10
steps = 20
transient = 4
backend = "{backend}"
"""


def write_config(tmp_path: Path, name: str = "run.toml", **changes) -> Path:
    """``CONFIG`` with ``changes`` written to ``tmp_path / name``."""
    values = dict(
        seed=3, threads=0, hidden=8, lr=0.02, steps=20, checkpoint_every=10, backend="numpy"
    )
    values.update(changes)
    path = tmp_path / name
    path.write_text(CONFIG.format(dir=tmp_path.as_posix(), **values))
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    """``lyapkit -q ARGS`` in a new process, on one OpenMP thread."""
    return subprocess.run(
        [sys.executable, "-m", "lyapkit.cli", "-q", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with one line on stderr (no traceback) that contains every word."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class Interrupt(Exception):
    """Stands for a kill in the middle of a run."""


def interrupted_run(tmp_path: Path, at: int = 15) -> Path:
    """A run stopped after its checkpoint at step 10 (of 20), like a killed one."""
    from lyapkit.trainers.config import load_config
    from lyapkit.trainers.trainer import Trainer

    def stop(trainer, step, store):
        if step == at:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(load_config(write_config(tmp_path)), callbacks=[stop]).train()
    return tmp_path / "small.nc"
