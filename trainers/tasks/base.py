"""The :class:`Task` container, the data location and the seeding shared by every task factory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lyapkit._checks import integer, number
from lyapkit.losses import LOSSES
from lyapkit.trainers.models.base import READOUTS

METRICS = ("accuracy", "rms")
SPLITS = ("train", "test")
DATA_ENV = "LYAPKIT_DATA"
DEFAULT_DATA_ROOT = Path("~/.lyapkit/data")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The directory that holds the downloaded data sets.

    The first of ``root``, the environment variable ``LYAPKIT_DATA`` and ``~/.lyapkit/data``,
    with ``~`` expanded: ``data_root(root) = expanduser(root or $LYAPKIT_DATA or
    ~/.lyapkit/data)``. The directory need not exist.

    Parameters
    ----------
    root : str or os.PathLike, optional
        An explicit data directory; default None (the environment variable, else the default).

    Returns
    -------
    pathlib.Path
        The data directory, user-expanded (not resolved, not created).

    See Also
    --------
    lyapkit.trainers.tasks.sequential_mnist : Reads ``<data_root>/mnist/``.
    lyapkit.trainers.tasks.sequential_cifar10 : Reads ``<data_root>/cifar-10-batches-py/``.

    Examples
    --------
    >>> from pathlib import Path
    >>> from lyapkit.trainers.tasks import data_root
    >>> print(data_root("/tmp/lyapkit-data"))
    /tmp/lyapkit-data
    >>> data_root("~/data") == Path.home() / "data"
    True
    """
    if root is None:
        root = os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser()


def seed_streams(seed: int, count: int) -> list[np.random.Generator]:
    """``count`` independent numpy generators spawned from ``seed`` (a non-negative int).

    Each split of a task draws from its own stream, so the test set does not change with the
    size of the training set.
    """
    children = np.random.SeedSequence(integer(seed, "seed", 0)).spawn(count)
    return [np.random.default_rng(child) for child in children]


def optional_count(value: int | None, name: str, available: int) -> int:
    """``value`` checked to lie in ``1 … available``; ``available`` when ``value`` is None."""
    if value is None:
        return available
    value = integer(value, name, 1)
    if value > available:
        raise ValueError(
            f"{name} must be at most {available} (the size of the data set), got {value}"
        )
    return value


@dataclass(frozen=True, eq=False)
class Task:
    """A supervised sequence task: train and test tensors and how to score a model on them.

    The inputs are batch-first sequences ``u ∈ R^{N × T × input_size}``; the targets belong to the
    last step (``readout="last"``) or to every step (``"sequence"``). A model's test outputs
    ``ŷ`` are scored by ``metric``: the accuracy ``mean(argmax ŷ = y)`` or the RMS error
    ``sqrt(mean((y − ŷ)²))``, and the threshold of minimal performance (MP) of Dubinin &
    Effenberger's learning-efficiency measure [1]_ is reached when the accuracy is
    ``≥ min_performance`` or the RMS error ``≤ min_performance``.

    Parameters
    ----------
    name : str
        Human-readable name with the parameters that define the data (``"ADD(100)"``, ``"psMNIST"``).
    input_size, output_size : int
        Width of each input step and of the model's readout (the number of classes for a
        classification task).
    loss : {"cross_entropy", "mse"}
        The training loss, by its name in ``lyapkit.losses``.
    readout : {"last", "sequence"}
        Whether the target belongs to the last step only or to every step (the ``readout`` of
        :class:`lyapkit.trainers.models.RecurrentModel`).
    metric : {"accuracy", "rms"}
        The performance measure: the fraction of correctly classified samples, or the root mean
        square error ``sqrt(mean((y − ŷ)²))`` (the square root of the ``mse`` loss).
    min_performance : float
        The threshold of minimal performance (MP) of Dubinin & Effenberger's learning-efficiency
        measure (the number of training iterations until the test metric first reaches it):
        reached when the accuracy is ``≥ min_performance``, or the RMS error ``≤ min_performance``.
    train_inputs, test_inputs : torch.Tensor
        float32 ``(N, T, input_size)``, batch first as the models of ``lyapkit.trainers.models``
        take them.
    train_targets, test_targets : torch.Tensor
        int64 class labels ``(N,)`` (``(N, T)`` for a per-step readout) for ``cross_entropy``;
        float32 ``(N, output_size)`` (``(N, T, output_size)``) for ``mse``.
    info : dict, optional
        Task-specific extras (default empty): ``"permutation"`` (the pixel permutation of a
        permuted task, an int array: step ``t`` shows pixel ``permutation[t]``), ``"teacher"``
        (the teacher network of the teacher–student task), ``"root"`` (the directory the data
        were read from).

    Raises
    ------
    ValueError
        An unknown ``loss``, ``readout`` or ``metric``, or inputs or targets of a split whose
        dtype or shape do not fit the sizes, the loss and the readout.

    See Also
    --------
    lyapkit.trainers.tasks.make_task : Builds a task by its registered name.
    lyapkit.trainers.tasks.adding_problem : A generated task.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.tasks import Task
    >>> x = torch.zeros(6, 5, 2)
    >>> task = Task("zeros", input_size=2, output_size=1, loss="mse", readout="last",
    ...             metric="rms", min_performance=0.1, train_inputs=x,
    ...             train_targets=torch.zeros(6, 1), test_inputs=x[:2],
    ...             test_targets=torch.zeros(2, 1))
    >>> task.length
    5
    >>> [tuple(inputs.shape) for inputs, _ in task.loader("train", batch_size=4)]
    [(4, 5, 2), (2, 5, 2)]
    >>> task.reaches_min_performance(0.05), task.reaches_min_performance(0.2)
    (True, False)
    """

    name: str
    input_size: int
    output_size: int
    loss: Literal["cross_entropy", "mse"]
    readout: Literal["last", "sequence"]
    metric: Literal["accuracy", "rms"]
    min_performance: float
    train_inputs: torch.Tensor = field(repr=False)
    train_targets: torch.Tensor = field(repr=False)
    test_inputs: torch.Tensor = field(repr=False)
    test_targets: torch.Tensor = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        for split in SPLITS:
            self._check_split(split)

    def _check_split(self, split: str) -> None:
        inputs, targets = self.data(split)
        if inputs.dtype != torch.float32 or inputs.ndim != 3 or inputs.shape[2] != self.input_size:
            raise ValueError(
                f"{split}_inputs must be float32 (N, T, {self.input_size}), "
                f"got {inputs.dtype} {tuple(inputs.shape)}"
            )
        n, length = inputs.shape[:2]
        steps = (n,) if self.readout == "last" else (n, length)
        if self.loss == "cross_entropy":
            shape, dtype = steps, torch.int64
        else:
            shape, dtype = (*steps, self.output_size), torch.float32
        if targets.dtype != dtype or tuple(targets.shape) != shape:
            raise ValueError(
                f"{split}_targets must be {dtype} {shape} for the {self.loss} loss with a "
                f"{self.readout!r} readout, got {targets.dtype} {tuple(targets.shape)}"
            )

    @property
    def length(self) -> int:
        """The number of time steps ``T`` of every sequence."""
        return self.train_inputs.shape[1]

    def data(self, split: Literal["train", "test"] = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs and targets of one split.

        Parameters
        ----------
        split : {"train", "test"}, default "train"
            Which split.

        Returns
        -------
        inputs : torch.Tensor
            ``train_inputs`` or ``test_inputs``.
        targets : torch.Tensor
            ``train_targets`` or ``test_targets``.

        Raises
        ------
        ValueError
            ``split`` is neither ``"train"`` nor ``"test"``.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, f"{split}_inputs"), getattr(self, f"{split}_targets")

    def loader(
        self,
        split: Literal["train", "test"] = "train",
        batch_size: int = 128,
        *,
        shuffle: bool | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ) -> DataLoader:
        """A ``torch.utils.data.DataLoader`` over ``split`` yielding ``(inputs, targets)`` batches.

        Parameters
        ----------
        split : {"train", "test"}, default "train"
            Which data.
        batch_size : int, default 128
            Samples per batch (the last batch may be smaller unless ``drop_last``).
        shuffle : bool, optional
            Reshuffle at every pass; default True for ``"train"``, False for ``"test"``.
        seed : int, default 0
            Seeds the loader's own ``torch.Generator``: the sequence of epoch orders is the same
            for the same seed, whatever else uses torch's global generator.
        drop_last : bool, default False
            Drop the last incomplete batch.

        Returns
        -------
        torch.utils.data.DataLoader
            The loader over a ``TensorDataset`` of the split's inputs and targets.

        Raises
        ------
        ValueError
            ``batch_size`` is not a positive integer, or ``split`` is unknown.
        """
        batch_size = integer(batch_size, "batch_size", 1)
        shuffle = split == "train" if shuffle is None else bool(shuffle)
        generator = torch.Generator().manual_seed(int(seed))
        return DataLoader(
            TensorDataset(*self.data(split)),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
        )

    def reaches_min_performance(self, value: float) -> bool:
        """Whether a test ``metric`` value reaches the threshold of minimal performance.

        Parameters
        ----------
        value : float
            A value of the task's ``metric`` (an accuracy, or an RMS error).

        Returns
        -------
        bool
            ``value ≥ min_performance`` for the accuracy, ``value ≤ min_performance`` for the
            RMS error.
        """
        if self.metric == "accuracy":
            return value >= self.min_performance
        return value <= self.min_performance


def min_performance_or(value: float | None, default: float) -> float:
    """``value`` as a positive float, or ``default`` when it is None."""
    if value is None:
        return default
    return number(value, "min_performance", positive=True)
