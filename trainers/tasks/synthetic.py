"""Generated tasks: the adding problem ADD(T) and the linear teacher–student regression.

Both are drawn from ``numpy.random.SeedSequence(seed)``: every split (and the teacher) has its own
spawned stream, so the same seed gives identical tensors and the test set does not depend on
``n_train``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from lyapkit._checks import integer
from lyapkit.trainers.models.linear import linear_teacher
from lyapkit.trainers.tasks.base import Task, min_performance_or, seed_streams

#: RMS error of the best constant guess (the mean, 1) for ADD(T): the sum of two independent
#: U(0, 1) numbers has variance 2/12.
ADDING_CHANCE_RMS = math.sqrt(1 / 6)


def _adding_split(n: int, T: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    values = rng.random((n, T), dtype=np.float32)
    half = T // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, T, n)
    rows = np.arange(n)
    cues = np.zeros((n, T), dtype=np.float32)
    cues[rows, first] = 1.0
    cues[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    inputs = np.stack([values, cues], axis=-1)
    return torch.from_numpy(inputs), torch.from_numpy(targets[:, None])


def adding_problem(
    T: int = 100,
    n_train: int = 10_000,
    n_test: int = 1_000,
    seed: int = 0,
    min_performance: float | None = None,
) -> Task:
    """The adding problem ADD(T) as in Dubinin & Effenberger (2023), after Hochreiter & Schmidhuber.

    Every sample is a two-dimensional sequence of length ``T``: the first coordinate holds
    i.i.d. numbers ``a_t ~ U(0, 1)``; the second is a cue signal, 0 (no cue) everywhere except
    1 (cue) at one step ``t₁`` drawn uniformly from the first half ``0 ≤ t₁ < ⌊T/2⌋`` and one step
    ``t₂`` drawn uniformly from the second half ``⌊T/2⌋ ≤ t₂ < T``. The target, read out at the
    last step, is ``a_{t₁} + a_{t₂}``. A regression task: loss ``"mse"``, metric ``"rms"`` (the
    paper trains on the RMS error, the square root of the mean squared error, which has the same
    minimisers) [2]_, after the long-lag problems of Hochreiter & Schmidhuber (1997) [1]_.

    Parameters
    ----------
    T : int, default 100
        Sequence length (≥ 2); the paper uses 100, 200, 400 and 800.
    n_train, n_test : int, default 10000, 1000
        Number of training and test samples (defaults of this package, not of the paper).
    seed : int, default 0
        Seeds the data (``numpy.random.SeedSequence``; train and test use separate streams).
    min_performance : float, optional
        Threshold of minimal performance on the RMS error; default ``sqrt(1/6)/2 ≈ 0.204``, half
        the RMS error of always answering the mean 1 (see ``lyapkit.trainers.tasks``).

    Returns
    -------
    Task
        inputs float32 ``(N, T, 2)``, targets float32 ``(N, 1)``; ``readout="last"``.

    Raises
    ------
    ValueError
        ``T`` is not an integer ≥ 2, ``n_train`` or ``n_test`` is not a positive integer,
        ``seed`` is not a non-negative integer, or ``min_performance`` is not positive.

    See Also
    --------
    lyapkit.trainers.tasks.make_task : Builds it as ``make_task("adding", T=...)``.
    lyapkit.trainers.tasks.teacher_student : The other generated task.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation 9(8),
       1735–1780, 1997.
    .. [2] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.tasks import adding_problem
    >>> task = adding_problem(T=10, n_train=4, n_test=2, seed=0)
    >>> x, y = task.data("train")
    >>> tuple(x.shape), tuple(y.shape), task.readout
    ((4, 10, 2), (4, 1), 'last')
    >>> x[..., 1].sum(1).tolist()  # two cues per sequence
    [2.0, 2.0, 2.0, 2.0]
    >>> bool(torch.allclose(y[:, 0], (x[..., 0] * x[..., 1]).sum(1)))  # y = a_t1 + a_t2
    True
    >>> round(task.min_performance, 3)
    0.204
    """
    T = integer(T, "T", 2)
    n_train, n_test = integer(n_train, "n_train", 1), integer(n_test, "n_test", 1)
    train_rng, test_rng = seed_streams(seed, 2)
    train = _adding_split(n_train, T, train_rng)
    test = _adding_split(n_test, T, test_rng)
    return Task(
        name=f"ADD({T})",
        input_size=2,
        output_size=1,
        loss="mse",
        readout="last",
        metric="rms",
        min_performance=min_performance_or(min_performance, ADDING_CHANCE_RMS / 2),
        train_inputs=train[0],
        train_targets=train[1],
        test_inputs=test[0],
        test_targets=test[1],
    )


def teacher_student(
    nu0: float,
    T: int = 300,
    hidden: int = 10,
    n_train: int = 10_000,
    n_test: int = 1_000,
    seed: int = 0,
    readout: Literal["last", "sequence"] = "sequence",
    min_performance: float | None = None,
) -> Task:
    """The linear teacher–student regression of Zucchet & Orvieto (2024).

    A frozen dense linear teacher RNN (:func:`lyapkit.trainers.models.linear_teacher`: ``hidden`` units,
    eigenvalue moduli ``|λ|² ~ U(nu0², 1)``, one input and one output) is driven by i.i.d.
    ``N(0, 1)`` inputs of length ``T``; its outputs are the targets the student must reproduce
    (computed by the teacher's step-by-step recurrence
    ``h_t = A h_{t−1} + B u_t``, ``y_t = C h_t`` from ``h_0 = 0``, with
    :meth:`lyapkit.trainers.models.RecurrentModel.reference_path`) [1]_.
    Loss ``"mse"``, metric ``"rms"``. ``nu0 → 1`` lengthens the teacher's memory (the paper
    sweeps ``nu0`` up to 0.99 with ``T = 300``, a 10-unit teacher and 64-unit students).

    Parameters
    ----------
    nu0 : float
        Lower bound on the moduli of the teacher's eigenvalues, in ``[0, 1)``.
    T : int, default 300
        Sequence length.
    hidden : int, default 10
        Hidden units of the teacher.
    n_train, n_test : int, default 10000, 1000
        Number of training and test sequences.
    seed : int, default 0
        Seeds the teacher and the inputs (separate ``SeedSequence`` streams for the teacher,
        the training and the test inputs).
    readout : {"sequence", "last"}, default "sequence"
        Targets at every step (the teacher's output sequence, default) or at the last step only.
    min_performance : float, optional
        Threshold of minimal performance on the RMS error; default half the standard deviation
        of the training targets (the RMS error of the best constant guess), see
        ``lyapkit.trainers.tasks``.

    Returns
    -------
    Task
        inputs float32 ``(N, T, 1)``; targets float32 ``(N, T, 1)`` (``(N, 1)`` for
        ``readout="last"``); the teacher is ``task.info["teacher"]``.

    Raises
    ------
    ValueError
        ``nu0`` is outside ``[0, 1)``, ``T``, ``hidden``, ``n_train`` or ``n_test`` is not a
        positive integer, ``seed`` is not a non-negative integer, ``readout`` is unknown, or
        ``min_performance`` is not positive.

    See Also
    --------
    lyapkit.trainers.models.linear_teacher : The teacher network.
    lyapkit.theory.teacher_student_loss : The loss landscape of the one-unit case.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding
       gradients are not the end of the story", Advances in Neural Information Processing
       Systems (NeurIPS), 2024.

    Examples
    --------
    >>> from lyapkit.trainers.tasks import teacher_student
    >>> task = teacher_student(0.5, T=20, hidden=4, n_train=8, n_test=4, seed=0)
    >>> task.name, tuple(task.train_inputs.shape), tuple(task.train_targets.shape)
    ('teacher-student(nu0=0.5, T=20)', (8, 20, 1), (8, 20, 1))
    >>> type(task.info["teacher"]).__name__
    'DenseLinearRNN'
    >>> last = teacher_student(0.5, T=20, hidden=4, n_train=8, n_test=4, readout="last")
    >>> tuple(last.train_targets.shape)
    (8, 1)
    """
    T = integer(T, "T", 1)
    n_train, n_test = integer(n_train, "n_train", 1), integer(n_test, "n_test", 1)
    teacher_rng, train_rng, test_rng = seed_streams(seed, 3)
    teacher = linear_teacher(1, hidden, 1, nu0=nu0, readout=readout, seed=teacher_rng)
    splits = []
    for n, rng in ((n_train, train_rng), (n_test, test_rng)):
        inputs = torch.from_numpy(rng.standard_normal((n, T, 1), dtype=np.float32))
        with torch.no_grad(), teacher.reference_path():
            splits.append((inputs, teacher(inputs)))
    chance_rms = splits[0][1].std().item()
    return Task(
        name=f"teacher-student(nu0={nu0}, T={T})",
        input_size=1,
        output_size=1,
        loss="mse",
        readout=readout,
        metric="rms",
        min_performance=min_performance_or(min_performance, chance_rms / 2),
        train_inputs=splits[0][0],
        train_targets=splits[0][1],
        test_inputs=splits[1][0],
        test_targets=splits[1][1],
        info={"teacher": teacher},
    )
