"""BPTT training with diagnostics recorded into a run store, checkpoints and exact resume.

A run is described by a configuration (:mod:`lyapkit.trainers.config`). :class:`Trainer` builds the task,
the model and the optimizer from it, then trains by backpropagation through time for
``training.steps`` optimizer steps. On its own schedule each diagnostic (Lyapunov spectrum,
gradient propagation, top curvature eigenvalues, effective learning rates) is computed and
recorded into the run file ``<run.dir>/<run.name>.nc`` (one group per diagnostic, see
:class:`lyapkit.store.RunStore`); test metrics go into the group ``metrics``.

Every ``training.checkpoint_every`` steps the store is flushed and then a checkpoint
``<run.name>.ckpt.pt`` is written beside it (both atomically). :meth:`Trainer.train` with
``resume=True`` loads the checkpoint, truncates the store's records past its step and continues;
since the data order is a function of the seed and the epoch only, the resumed run equals an
uninterrupted one.

A run is never lost, mixed or silently wrong: the whole run holds the lock ``<run.name>.lock``
(:func:`lyapkit.store.lock_run`); everything is validated before anything is written; an existing
run is continued only with ``resume`` and replaced only with ``overwrite``; the store and the
checkpoint carry the same run id; and a resume whose configuration differs in a key that changes
the result (all but :data:`FREE_KEYS`) is refused with the differences listed (:class:`RunError`).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import inspect
import io
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lyapkit
from lyapkit._array import torch_device
from lyapkit._checks import integer
from lyapkit._files import atomic_write, reason
from lyapkit.backend import BackendError, get_backend
from lyapkit.flossing import finite_time_exponents, flossing_loss
from lyapkit.losses import mean_loss
from lyapkit.progress import progress_bar
from lyapkit.store import RunStore, lock_run, open_run, run_config
from lyapkit.trainers import models
from lyapkit.trainers.config import (
    ConfigError,
    build_residual,
    schedule_steps,
    validate_config,
)
from lyapkit.trainers.tasks import Task, make_task

log = logging.getLogger(__name__)

__all__ = [
    "MODELS",
    "DIAGNOSTICS",
    "FREE_KEYS",
    "RunError",
    "TrainResult",
    "Trainer",
    "build_model",
    "config_differences",
]

#: The configuration keys that may change when a run is resumed, because they cannot change its
#: result: where the run lives, CPU threads (up to floating-point rounding of parallel sums) and
#: how often it is checkpointed. Every other key (model, task, seed, device, dtype, optimizer,
#: schedule, training steps, batch size and evaluation schedule, diagnostics) must equal the
#: stored one. A change of a free key is logged and noted in the store (``config_changes``).
FREE_KEYS = ("run.dir", "run.name", "run.threads", "training.checkpoint_every")


class RunError(ValueError):
    """A run cannot start or resume as asked.

    Raised by :meth:`lyapkit.trainers.trainer.Trainer.train` when the run exists already (without
    ``resume`` or ``overwrite``), its checkpoint belongs to another run (another run id) or cannot
    be read, or its configuration differs from the stored one in a key that changes the result
    (every key but ``FREE_KEYS``); exit code 2 on the command line. A ``ValueError``.

    See Also
    --------
    lyapkit.trainers.config.ConfigError : An invalid configuration.
    lyapkit.trainers.trainer.config_differences : The keys a resume compares.

    Examples
    --------
    >>> from pathlib import Path
    >>> from lyapkit.trainers.trainer import Trainer
    >>> config = {
    ...     "run": {"name": "taken", "dir": "runs-taken"},
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16},
    ... }
    >>> Path("runs-taken").mkdir(exist_ok=True)
    >>> Path("runs-taken/taken.nc").touch()  # a run of that name exists
    >>> Trainer(config).train()
    Traceback (most recent call last):
    ...
    lyapkit.trainers.trainer.RunError: run 'taken' exists in 'runs-taken' (taken.nc); pass --resume to continue it or --overwrite to replace it
    """


_ABSENT = "(absent)"


def _leaves(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def config_differences(
    stored: dict[str, Any], new: dict[str, Any]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """The keys whose values differ between two configurations, split by whether they matter.

    Both configurations are flattened to dotted keys (``optimizer.lr``; ``new`` after a JSON
    round trip, as the store keeps it); a key differs when ``stored[key] != new[key]`` or one
    value is a bool and the other not, and a key missing on one side has the value
    ``"(absent)"``. The differing keys of ``FREE_KEYS`` (``run.dir``, ``run.name``,
    ``run.threads``, ``training.checkpoint_every``) cannot change a run's result; the others
    can, and a resume refuses them.

    Parameters
    ----------
    stored : dict
        The configuration a run was started with (as its store keeps it).
    new : dict
        The configuration it is to continue with.

    Returns
    -------
    changed : dict
        ``key: (stored value, new value)`` of the differing keys that change the result, sorted.
    free : dict
        The same for the differing keys of ``FREE_KEYS``.

    See Also
    --------
    lyapkit.trainers.trainer.Trainer.train : Refuses a resume with ``changed`` keys.

    Examples
    --------
    >>> from lyapkit.trainers.config import validate_config
    >>> from lyapkit.trainers.trainer import config_differences
    >>> stored = validate_config({"run": {"name": "a"}})
    >>> new = validate_config({"run": {"name": "b"}, "optimizer": {"lr": 0.1}})
    >>> changed, free = config_differences(stored, new)
    >>> changed
    {'optimizer.lr': (0.01, 0.1)}
    >>> free
    {'run.name': ('a', 'b')}
    """
    old, now = _leaves(stored), _leaves(json.loads(json.dumps(new)))
    result: dict[str, tuple[Any, Any]] = {}
    free: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(old) | set(now)):
        a, b = old.get(key, _ABSENT), now.get(key, _ABSENT)
        if a != b or isinstance(a, bool) != isinstance(b, bool):
            (free if key in FREE_KEYS else result)[key] = (a, b)
    return result, free


#: The model classes a ``[model]`` table may name: every concrete recurrent model of
#: :mod:`lyapkit.trainers.models`.
MODELS = tuple(
    name
    for name in models.__all__
    if inspect.isclass(cls := getattr(models, name))
    and issubclass(cls, models.RecurrentModel)
    and not inspect.isabstract(cls)
)


@dataclass(frozen=True)
class TrainResult:
    """Summary of a finished run.

    What :meth:`lyapkit.trainers.trainer.Trainer.train` returns. ``steps_to_threshold`` is the
    learning-efficiency measure of Dubinin & Effenberger [1]_: the first evaluated step ``t``
    with ``metric(t) ≥ MP`` (accuracy) or ``metric(t) ≤ MP`` (RMS error), ``MP`` the task's
    ``min_performance``.

    Parameters
    ----------
    path : pathlib.Path
        The run file.
    best_metric : float
        Best test accuracy (classification) or lowest test RMS (regression).
    metric : str
        ``"accuracy"`` or ``"rms"``.
    steps_to_threshold : int
        First evaluated step whose test metric reached the task's minimal performance, −1 if none
        (the WCRNN paper's learning-efficiency measure).
    final_loss : float
        Test loss at the last step.
    seconds : dict
        Wall-clock seconds spent in training steps (``"training"``), evaluation and each
        diagnostic, in this process.
    already_finished : bool, default False
        The run was finished before this call (a resume of a finished run does nothing).

    See Also
    --------
    lyapkit.trainers.trainer.Trainer : Trains a run and returns its summary.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> from pathlib import Path
    >>> from lyapkit.trainers.trainer import TrainResult
    >>> result = TrainResult(Path("runs/a.nc"), 0.93, "accuracy", 120, 0.25, {"training": 1.5})
    >>> result.describe_threshold()
    'minimal performance reached at step 120'
    >>> TrainResult(Path("runs/b.nc"), 0.1, "accuracy", -1, 2.3, {}).describe_threshold()
    'minimal performance not reached'
    """

    path: Path
    best_metric: float
    metric: str
    steps_to_threshold: int
    final_loss: float
    seconds: dict[str, float]
    already_finished: bool = False

    def describe_threshold(self) -> str:
        """Say at which step the run reached its minimal performance.

        Returns
        -------
        str
            ``"minimal performance reached at step N"``, or ``"minimal performance not
            reached"``.
        """
        if self.steps_to_threshold < 0:
            return "minimal performance not reached"
        return f"minimal performance reached at step {self.steps_to_threshold}"


def build_model(options: dict[str, Any], task: Task, seed: int) -> torch.nn.Module:
    """The model of a ``[model]`` table for ``task``: sizes and readout come from the task.

    ``model = cls(task.input_size, output_size=task.output_size, readout=task.readout,
    **options)``, ``cls`` the class of ``lyapkit.trainers.models`` named by ``options["name"]``
    (one of ``MODELS``). A ``residual`` table becomes a matrix, and for the ``"informed"`` kind the
    per-unit ``gamma`` too (:func:`lyapkit.trainers.config.build_residual`); a class that takes a ``seed`` gets ``seed``
    unless the table gives one.

    Parameters
    ----------
    options : dict
        The ``[model]`` table: ``name``, ``hidden_size`` and the class's other keyword arguments.
    task : Task
        The task, which fixes ``input_size``, ``output_size`` and ``readout``.
    seed : int
        The run's seed, for the initial weights and a random residual.

    Returns
    -------
    torch.nn.Module
        The model, a :class:`lyapkit.trainers.models.RecurrentModel`, on the CPU in float32.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        An unknown model name, no or a bad ``hidden_size``, a key the class does not take, a bad
        residual, or a value the class refuses.

    See Also
    --------
    lyapkit.trainers.models.WCRNN : The default model.
    lyapkit.trainers.trainer.Trainer : Builds the model of a configuration this way.

    Examples
    --------
    >>> from lyapkit.trainers.tasks import make_task
    >>> from lyapkit.trainers.trainer import build_model
    >>> task = make_task("adding", T=10, n_train=8, n_test=4)
    >>> model = build_model({"name": "WCRNN", "hidden_size": 8}, task, seed=0)
    >>> type(model).__name__, model.state_size, model.readout
    ('WCRNN', 8, 'last')
    """
    options = dict(options)
    name = options.pop("name")
    if name not in MODELS:
        raise ConfigError(f"model.name must be one of {list(MODELS)}, got {name!r}")
    cls = getattr(models, name)
    accepted = set(inspect.signature(cls).parameters)
    if "hidden_size" not in options:
        raise ConfigError(f"model.hidden_size is required for model {name!r}")
    integer(
        options["hidden_size"], "model.hidden_size", 1, error=ConfigError
    )  # before the residual
    if "residual" in options:
        residual, gamma = build_residual(options["residual"], options["hidden_size"], seed)
        options["residual"] = residual
        if gamma is not None:
            if "gamma" in options:
                raise ConfigError(
                    "model.gamma cannot be given with model.residual.kind = 'informed', which "
                    "draws the per-unit couplings from its gamma_range"
                )
            options["gamma"] = gamma
    unknown = sorted(set(options) - (accepted - {"input_size", "output_size", "readout"}))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {['model.' + k for k in unknown]} for model {name!r}; it takes "
            f"{sorted(accepted - {'input_size', 'output_size', 'readout'})}"
        )
    if "seed" in accepted:
        options.setdefault("seed", seed)
    try:
        return cls(task.input_size, output_size=task.output_size, readout=task.readout, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model: {err}") from err


def _optimizer(model: torch.nn.Module, opt: dict[str, Any]) -> torch.optim.Optimizer:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if opt["name"] == "sgd":
        return torch.optim.SGD(
            params, lr=opt["lr"], momentum=opt["momentum"], weight_decay=opt["weight_decay"]
        )
    cls = torch.optim.Adam if opt["name"] == "adam" else torch.optim.AdamW
    return cls(
        params,
        lr=opt["lr"],
        betas=tuple(opt["betas"]),
        eps=opt["eps"],
        weight_decay=opt["weight_decay"],
    )


def _scheduler(optimizer: torch.optim.Optimizer, schedule: dict, steps: int) -> Any:
    if schedule["name"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, schedule["step_size"], schedule["factor"])
    if schedule["name"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


# ``batch × state²`` (times the members of a group) up to which training runs on one CPU thread by
# default (``run.threads = 0``). Measured on 2 cores with the demo's WCRNN (32 units): one and two
# threads take the same time per step at 2¹⁶ (batch 64) and at 2¹⁷ (a group of 2); two are 1.3×
# faster at 2¹⁸ (batch 256, or a group of 4) and 1.4× at 2²⁰ (a group of 16).
_SMALL_MODEL = 2**17
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _glibc() -> Any:
    """The C library when it is glibc (which has ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def _cpu_settings(device: torch.device, threads: int) -> Iterator[None]:
    """Process settings for training small models fast on the CPU, restored afterwards.

    * ``threads`` intra-op threads (0: leave torch's setting). The products of a small recurrent
      model take microseconds, less than handing them to OpenMP workers, and when the cores are
      shared with other processes the spinning workers make every step 10–20× slower.
    * With glibc, freed memory is kept for reuse. A training step allocates and frees megabytes
      of buffers (states, errors, gradients); glibc's adaptive thresholds map blocks larger than
      the largest one freed so far afresh and give the top of the heap back beyond twice that, so
      every step faulted its buffers in page by page again (~600 page faults, a third of the step
      of a 32-unit WCRNN at batch 64). While training, blocks up to 32 MiB come from the heap and
      up to 1 GiB of it is kept; afterwards the free memory is returned (``malloc_trim``) and
      glibc's default thresholds (128 KiB) are set back.
    """
    previous = torch.get_num_threads()
    libc = _glibc() if device.type == "cpu" else None
    if threads:
        torch.set_num_threads(threads)
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, 128 << 10)
            libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10)
            libc.malloc_trim(0)


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically, serialised in memory first (torch's own file writer reports a
    full disk as a RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getbuffer())


def _epoch_order(n: int, seed: int) -> torch.Tensor:
    """The order in which a shuffling ``DataLoader`` seeded with ``seed`` (``Task.loader``) visits
    ``n`` samples: its iterator draws a base seed from the generator, then its sampler a
    permutation."""
    generator = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator)


class Trainer:
    """Train a model on a task by BPTT while recording diagnostics into a run store.

    The constructor builds the task, the model, the optimizer and its schedule from ``config``;
    :meth:`lyapkit.trainers.trainer.Trainer.train` then takes ``training.steps`` optimizer steps
    ``θ ← step(θ, ∇_θ (L_B(θ) + P(θ)))`` on batches ``B`` of the training set (epoch ``e``
    shuffled by the seed ``(run.seed, e)``), where ``L_B`` is the task's mean loss
    backpropagated through time and ``P`` the gradient-flossing penalty
    ``weight · (1/S) Σ_e Σ_i (λ_ei − target)²`` of the top finite-time Lyapunov exponents [2]_ at
    the steps of ``diagnostics.flossing`` (0 elsewhere, or without it). Every ``eval_every`` steps
    the test loss and metric go into the group ``metrics`` of ``<run.dir>/<run.name>.nc``; each
    diagnostic (Lyapunov spectrum, gradient propagation, top curvature eigenvalues, effective
    learning rates) is recorded on its own schedule; the summary holds the best metric and the
    first step reaching the minimal performance [1]_. Checkpoints ``<run.name>.ckpt.pt`` allow an
    exact resume.

    Parameters
    ----------
    config : dict
        A configuration (validated by :func:`lyapkit.trainers.config.validate_config`).
    progress : bool, optional
        Show a tqdm bar (quiet off a terminal); default off.
    callbacks : sequence of callables, optional
        Hooks ``callback(trainer, step, store)`` called at the end of every optimizer step (after
        the scheduled evaluation and diagnostics, before a checkpoint), e.g. to record a custom
        diagnostic with ``store.append(group, step, record)`` on a schedule of their own.

    Attributes
    ----------
    config : dict
        The full, validated configuration.
    task : Task
        The task of ``[task]``.
    model : torch.nn.Module
        The model of ``[model]``, on ``run.device`` in ``run.dtype``.
    optimizer : torch.optim.Optimizer
        The optimizer of ``[optimizer]``.
    path, checkpoint_path, lock_path : pathlib.Path
        The run file ``<run.dir>/<run.name>.nc``, its checkpoint and its lock file.
    seconds : dict
        Wall-clock seconds spent training, evaluating and in each diagnostic.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        An invalid configuration, or a task or model that refuses its options.
    ValueError
        ``run.device`` is not a device of this machine.

    See Also
    --------
    lyapkit.trainers.config.load_config : Reads a configuration file.
    lyapkit.trainers.sweep.run_sweep : Trains a grid of runs.
    lyapkit.open_run : Reads a run file back.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.
    .. [2] R. Engelken, "Gradient flossing: improving gradient descent through dynamic control
       of Jacobians", Advances in Neural Information Processing Systems (NeurIPS), 2023.

    Examples
    --------
    A two-step run of a 4-unit WCRNN with the residual ``R = 0.9 I`` on ADD(10), with the
    Lyapunov spectrum recorded at the last step:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> from lyapkit.trainers.trainer import Trainer
    >>> config = {
    ...     "run": {"name": "tiny", "dir": "runs-trainer"},
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4, "gamma": 0.05,
    ...               "residual": {"kind": "homogeneous", "r": 0.9}},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 1, "checkpoint_every": 2},
    ...     "diagnostics": {"lyapunov": {"at": [2], "steps": 50, "transient": 10}},
    ... }
    >>> trainer = Trainer(config)
    >>> result = trainer.train()
    >>> result.path.name, result.metric, result.already_finished
    ('tiny.nc', 'rms', False)
    >>> list(lk.open_run(result.path).children)  # in order of name
    ['lyapunov', 'metrics', 'summary']
    >>> trainer.train(resume=True).already_finished  # a finished run is left as it is
    True
    >>> spectrum = trainer.spectrum(200, transient=10)
    >>> bool(np.abs(spectrum.exponents - np.log(0.9)).max() < 0.05)  # weak coupling: log|eig R|
    True
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        progress: bool | None = None,
        callbacks: Sequence[Callable[[Trainer, int, RunStore], None]] = (),
    ):
        self.config = validate_config(config)
        self.callbacks = list(callbacks)
        run = self.config["run"]
        self.path = Path(run["dir"]) / f"{run['name']}.nc"
        self.checkpoint_path = Path(run["dir"]) / f"{run['name']}.ckpt.pt"
        self.lock_path = Path(run["dir"]) / f"{run['name']}.lock"
        self.run_id: str | None = None
        self.progress = progress
        self.dtype = getattr(torch, run["dtype"])
        self.device = torch_device(run["device"], "run.device")
        seed = run["seed"]
        torch.manual_seed(seed)
        task_options = {k: v for k, v in self.config["task"].items() if k != "name"}
        try:
            self.task = make_task(self.config["task"]["name"], **task_options)
        except ValueError as err:
            raise ConfigError(f"task: {err}") from err
        self.model = build_model(self.config["model"], self.task, seed).to(self.device, self.dtype)
        self.optimizer = _optimizer(self.model, self.config["optimizer"])
        steps = self.config["training"]["steps"]
        self.scheduler = _scheduler(self.optimizer, self.config["schedule"], steps)
        self.diagnostics = {
            name: (schedule_steps(options, steps), options)
            for name, options in self.config["diagnostics"].items()
        }
        test_inputs, test_targets = self.task.data("test")
        self._probe = (test_inputs.to(self.device, self.dtype), self._target(test_targets))
        self._best = math.nan
        self._reached = -1
        self._last_loss = math.nan
        # the batch losses since the last evaluation, whose mean it records as ``train_loss``
        self._running: list[float] = []
        self._flossed: torch.Tensor | None = None  # exponents flossed at this step, for its record
        self.seconds: dict[str, float] = {"training": 0.0, "evaluation": 0.0}

    # --- data --------------------------------------------------------------------------------------

    def _batches(self, start: int):
        """Training batches from step ``start`` on: epoch ``e`` is shuffled by the seed ``(seed, e)``.

        The batches are gathered by index (one ``index_select`` per batch instead of a
        ``DataLoader``'s per-sample collation) in the order of
        ``task.loader("train", batch_size, seed=seed * 100_003 + e, drop_last=True)``.
        """
        training, seed = self.config["training"], self.config["run"]["seed"]
        inputs, targets = self.task.data("train")
        n, size = inputs.shape[0], training["batch_size"]
        per_epoch = n // size
        if per_epoch == 0:
            raise ConfigError(
                f"training.batch_size ({training['batch_size']}) exceeds the training set ({n})"
            )
        epoch, skip = divmod(start, per_epoch)
        while True:
            order = _epoch_order(n, seed * 100_003 + epoch)
            for i in range(skip, per_epoch):
                index = order[i * size : (i + 1) * size]
                yield inputs[index].to(self.device, self.dtype), self._target(targets[index])
            epoch, skip = epoch + 1, 0

    def _target(self, targets: torch.Tensor) -> torch.Tensor:
        if targets.is_floating_point():
            return targets.to(self.device, self.dtype)
        return targets.to(self.device)

    # --- training ----------------------------------------------------------------------------------

    def train(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Run (or, with ``resume``, continue) the training; return its summary.

        The run holds its lock file ``<run.name>.lock`` throughout. Without ``resume`` or
        ``overwrite`` an existing run (run file or checkpoint) is refused; ``overwrite`` replaces
        it. ``resume`` continues from the checkpoint after checking that it belongs to the run
        file (same run id) and that the configuration equals the stored one in every key that
        changes the result (all but ``FREE_KEYS``); a finished run is left as it is.

        Parameters
        ----------
        resume : bool, default False
            Continue the run from its checkpoint (or start it when there is none).
        overwrite : bool, default False
            Replace an existing run.

        Returns
        -------
        TrainResult
            The summary of the run (``already_finished`` for a resume of a finished run).

        Raises
        ------
        ValueError
            ``resume`` and ``overwrite`` are both set.
        lyapkit.trainers.config.ConfigError
            An option that cannot work (checked before anything is written).
        lyapkit.trainers.trainer.RunError
            The run exists (without ``resume``/``overwrite``), its checkpoint is another run's,
            or its configuration differs from the stored one.
        lyapkit.store.RunLockedError
            Another process is writing the run.
        """
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: pick one")
        self._validate()
        with lock_run(self.lock_path), _cpu_settings(self.device, self._threads()):
            return self._train(resume, overwrite)

    def _validate(self) -> None:
        """Check what the configuration checks cannot: options that need the task or the model."""
        n, size = self.task.data("train")[0].shape[0], self.config["training"]["batch_size"]
        if n // size == 0:
            raise ConfigError(f"training.batch_size ({size}) exceeds the training set ({n})")
        if "lyapunov" in self.diagnostics:
            options = self.diagnostics["lyapunov"][1]
            try:
                get_backend(options["backend"], self.model.as_map())
            except BackendError as err:
                raise ConfigError(f"diagnostics.lyapunov.backend: {err}") from None
        if "flossing" in self.diagnostics:
            options, state = self.diagnostics["flossing"][1], self.model.state_size
            if options["k"] > state:
                raise ConfigError(
                    f"diagnostics.flossing.k must be at most the model's state size {state}, "
                    f"got {options['k']}"
                )
            if options["sequences"] > size:
                raise ConfigError(
                    f"diagnostics.flossing.sequences ({options['sequences']}) exceeds "
                    f"training.batch_size ({size}): it drives the exponents with batch sequences"
                )

    def _threads(self) -> int:
        """Intra-op CPU threads while training: ``run.threads``, or for 0 (auto) one thread for
        a small model (``batch × state² ≤ 2¹⁷``) and torch's setting otherwise."""
        threads = self.config["run"]["threads"]
        if threads or self.device.type != "cpu":
            return threads
        state = self.model.state_size
        return 1 if self.config["training"]["batch_size"] * state**2 <= _SMALL_MODEL else 0

    def _new_store(self) -> RunStore:
        store = RunStore.create(
            self.path, config=self.config, seed=self.config["run"]["seed"], overwrite=True
        )
        self.run_id = store.run_id
        return store

    def _open_for_resume(self) -> tuple[RunStore, int] | TrainResult:
        """The store of the run to resume and the step to continue from, or the result of a
        finished run."""
        name, store = self.config["run"]["name"], RunStore.open(self.path)
        changed, free = config_differences(store.config, self.config)
        if changed:
            diffs = "; ".join(
                f"{key}: {json.dumps(a)} → {json.dumps(b)}" for key, (a, b) in changed.items()
            )
            raise RunError(
                f"cannot resume run {name!r}: the config differs from the stored one in keys "
                f"that change the result ({diffs}); undo the change, or start a new run "
                "(another run.name, or --overwrite)"
            )
        self.run_id = store.run_id
        if "summary" in store.groups:
            log.info("run %s is finished (step %d): nothing to do", self.path, store.last_step())
            return self._finished_result(store)
        if self.checkpoint_path.exists():
            start = self._load_checkpoint(expect_run_id=store.run_id)
            store.truncate(start)
            if math.isnan(self._last_loss) and "metrics" in store.groups:  # an older checkpoint
                losses = store.to_datatree()["metrics"]["test_loss"].values
                self._last_loss = float(losses[-1]) if len(losses) else math.nan
            log.info("resuming %s from step %d", self.path, start)
        else:
            start = -1
            store.truncate(start)
            log.info(
                "no checkpoint at %s yet: restarting the run from step 0", self.checkpoint_path
            )
        for key, (a, b) in free.items():
            log.info("resuming with %s changed: %s → %s", key, json.dumps(a), json.dumps(b))
        if free:
            note = {
                "step": max(start, 0),
                "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "changed": {key: list(pair) for key, pair in free.items()},
            }
            store.update_config(self.config, note)
        return store, start

    def _finished_result(self, store: RunStore) -> TrainResult:
        tree = store.to_datatree()
        summary = tree["summary"].to_dataset()
        losses = tree["metrics"]["test_loss"].values if "metrics" in tree.children else []
        return TrainResult(
            self.path,
            float(summary["best_metric"].values[-1]),
            self.task.metric,
            int(summary["steps_to_threshold"].values[-1]),
            float(losses[-1]) if len(losses) else math.nan,
            dict(self.seconds),
            already_finished=True,
        )

    def _train(self, resume: bool, overwrite: bool) -> TrainResult:
        name, directory = self.config["run"]["name"], self.path.parent
        present = [p.name for p in (self.path, self.checkpoint_path) if p.exists()]
        if resume and self.path.exists():
            opened = self._open_for_resume()
            if isinstance(opened, TrainResult):
                return opened
            store, start = opened
        elif resume and present:
            raise RunError(
                f"cannot resume run {name!r}: its checkpoint {str(self.checkpoint_path)!r} has no "
                f"run file {self.path.name!r} beside it; pass --overwrite to start it afresh"
            )
        elif present and not overwrite:
            raise RunError(
                f"run {name!r} exists in {str(directory)!r} ({', '.join(present)}); pass --resume "
                "to continue it or --overwrite to replace it"
            )
        else:
            if resume:
                log.info("no run %s yet: starting it", self.path)
            if present:
                log.info("replacing the run %s (%s)", name, ", ".join(present))
            self.checkpoint_path.unlink(missing_ok=True)
            store, start = self._new_store(), -1
        if start < 0:
            start = 0
            self._evaluate(store, 0, math.nan)
            self._run_diagnostics(store, 0)
        # Saturated tanh units make denormal products, which stall CPUs (up to 7× slower); they
        # are flushed to zero while training and the process default is restored afterwards.
        flush = self.device.type == "cpu"
        torch.set_flush_denormal(flush)
        try:
            self._steps(store, start)
        finally:
            torch.set_flush_denormal(False)
        return self._finish(store)

    def _finish(self, store: RunStore) -> TrainResult:
        """Record the run's summary (best metric, step that reached the minimal performance),
        flush the store and return the result."""
        store.append(
            "summary",
            self.config["training"]["steps"],
            {"best_metric": self._best, "steps_to_threshold": self._reached},
            attrs={
                "best_metric": {"long_name": f"best test {self.task.metric}", "units": "1"},
                "steps_to_threshold": {
                    "long_name": "first step reaching the minimal performance (−1: never)",
                    "units": "iteration",
                },
            },
        )
        store.flush()
        return TrainResult(
            self.path, self._best, self.task.metric, self._reached, self._last_loss, self.seconds
        )

    def _steps(self, store: RunStore, start: int) -> None:
        """Optimizer steps ``start + 1 … total`` with evaluation, diagnostics and checkpoints."""
        training = self.config["training"]
        total = training["steps"]
        self.model.train()
        bar = progress_bar(self.progress, total - start, "training")
        batches = self._batches(start)
        clip = self.config["optimizer"]["clip_grad_norm"]
        for step in range(start + 1, total + 1):
            tick = time.perf_counter()
            inputs, targets = next(batches)
            loss = mean_loss(self.task.loss, self.model(inputs), targets)
            self.optimizer.zero_grad(set_to_none=True)
            (loss + self._flossing_penalty(step, inputs)).backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            self.scheduler.step()
            self._running.append(loss.item())
            self.seconds["training"] += time.perf_counter() - tick
            bar.update(1)
            if not math.isfinite(self._running[-1]):
                store.flush()
                raise FloatingPointError(
                    f"the training loss became {self._running[-1]} at step {step}"
                )
            if step % training["eval_every"] == 0 or step == total:
                self._evaluate(store, step, float(np.mean(self._running)))
                self._running.clear()
            self._run_diagnostics(store, step)
            for callback in self.callbacks:
                callback(self, step, store)
            if step % training["checkpoint_every"] == 0 or step == total:
                store.flush()
                self._save_checkpoint(step)
        bar.close()

    def _flossing_penalty(self, step: int, inputs: torch.Tensor) -> torch.Tensor | float:
        """Gradient flossing (Engelken 2023) at its scheduled steps, 0 elsewhere.

        The penalty ``weight · (1/S) Σ_e Σ_i (λ_ei − target)²`` of the top ``k`` finite-time
        exponents (:func:`lyapkit.flossing.finite_time_exponents`) over a window of ``steps``
        steps, driven by ``S = sequences`` sequences of this training batch (sequence ``e`` reads
        rows ``e, e + S, …`` laid end to end, from the zero state, basis seeded by the step). It
        is added to the task loss of this optimizer step, where Engelken takes separate flossing
        steps: one optimizer step per training step keeps the learning-rate schedule, the
        momentum and Adam statistics, the step counts and checkpoints meaning what they mean
        without flossing (to first order in the learning rate a flossing step followed by a task
        step is this summed step). ``weight = 0`` only records the exponents (computed without a
        graph). The exponents are kept for this step's record (group ``flossing``); their cost
        counts as training time.
        """
        scheduled = self.diagnostics.get("flossing")
        if scheduled is None or step not in scheduled[0]:
            return 0.0
        options = scheduled[1]
        with torch.set_grad_enabled(options["weight"] > 0 and torch.is_grad_enabled()):
            exponents = _flossing_exponents(self.model, options, inputs, step)
        self._flossed = exponents.detach()
        if options["weight"] == 0:
            return 0.0
        return options["weight"] * flossing_loss(exponents, options["target"])

    def _save_checkpoint(self, step: int) -> None:
        _atomic_save(
            {
                "step": step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best": self._best,
                "reached": self._reached,
                "last_loss": self._last_loss,
                "running_losses": list(self._running),
                "run_id": self.run_id,
            },
            self.checkpoint_path,
        )

    def _load_checkpoint(self, *, expect_run_id: str | None | bool = False) -> int:
        """Restore the checkpoint; return its step. With ``expect_run_id`` (not False), a
        checkpoint of another run id is refused (:class:`RunError`)."""
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        except Exception as err:  # a torn or foreign file: any unpickling error
            raise RunError(
                f"cannot read the checkpoint {str(self.checkpoint_path)!r} (torn, or not a torch "
                f"checkpoint): {reason(err)}"
            ) from err
        if expect_run_id is not False and state.get("run_id") != expect_run_id:
            raise RunError(
                f"cannot resume: the checkpoint {str(self.checkpoint_path)!r} belongs to another "
                f"run (run id {state.get('run_id')}) than the run file {str(self.path)!r} (run id "
                f"{expect_run_id}); pass --overwrite to start the run afresh"
            )
        self.run_id = state.get("run_id")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._best, self._reached = state["best"], state["reached"]
        self._last_loss = state.get("last_loss", math.nan)
        self._running = list(state.get("running_losses", []))  # older checkpoints: none
        return int(state["step"])

    # --- evaluation and diagnostics ------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, store: RunStore, step: int, train_loss: float) -> None:
        """Test loss and metric on the whole test set, recorded (:meth:`_record_evaluation`)."""
        tick = time.perf_counter()
        self.model.eval()
        outputs = torch.cat([self.model(x) for x in self._probe[0].split(512)])
        self.model.train()
        self._record_evaluation(store, step, train_loss, outputs, time.perf_counter() - tick)

    def _record_evaluation(
        self, store: RunStore, step: int, train_loss: float, outputs: torch.Tensor, seconds: float
    ) -> None:
        """Record the test loss and metric of the model's test ``outputs``; track the best and
        the step that first reached the minimal performance."""
        targets = self._probe[1]
        self._last_loss = float(mean_loss(self.task.loss, outputs, targets))
        if self.task.metric == "accuracy":
            metric = float((outputs.argmax(-1) == targets).double().mean())
            better = math.isnan(self._best) or metric > self._best
        else:
            metric = float(((outputs - targets) ** 2).mean().sqrt())
            better = math.isnan(self._best) or metric < self._best
        if better:
            self._best = metric
        if self._reached < 0 and self.task.reaches_min_performance(metric):
            self._reached = step
        self.seconds["evaluation"] += seconds
        store.append(
            "metrics",
            step,
            {
                "train_loss": train_loss,
                "test_loss": self._last_loss,
                f"test_{self.task.metric}": metric,
                "lr": float(self.optimizer.param_groups[0]["lr"]),
            },
            attrs={
                "train_loss": {
                    "long_name": "mean training loss since the last evaluation",
                    "units": "1",
                },
                "test_loss": {"long_name": "test loss", "units": "1"},
                f"test_{self.task.metric}": {"long_name": f"test {self.task.metric}", "units": "1"},
                "lr": {"long_name": "learning rate", "units": "1"},
            },
        )
        log.info(
            "step %d: test loss %.4g, %s %.4g", step, self._last_loss, self.task.metric, metric
        )

    def _run_diagnostics(self, store: RunStore, step: int) -> None:
        cache: dict[str, Any] = {}
        for name, (steps, options) in self.diagnostics.items():
            if step in steps:
                tick = time.perf_counter()
                record = DIAGNOSTICS[name](self, options, cache)
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - tick
                if record is not None:
                    store.append(name, step, record)

    def spectrum(
        self,
        steps: int,
        *,
        transient: int = 100,
        sequences: int = 4,
        k: int | None = None,
        backend: str = "numpy",
    ) -> lyapkit.LyapunovSpectrum:
        """Lyapunov spectrum of the model's cell (``model.as_map()``, current weights).

        The cell is driven by test sequences laid end to end: member ``i`` of the
        ``E = min(sequences, N)`` members reads test sequences ``i, i + E, i + 2E, …`` (modulo
        ``N``) until ``transient + steps`` inputs; :func:`lyapkit.lyapunov_spectrum` (seed 0)
        averages the QR estimates of the members.

        Parameters
        ----------
        steps : int
            Steps over which the exponents are averaged.
        transient : int, default 100
            Steps discarded first.
        sequences : int, default 4
            Ensemble members (at most the test set).
        k : int, optional
            Number of leading exponents; default all.
        backend : str, default "numpy"
            The lyapkit backend.

        Returns
        -------
        lyapkit.LyapunovSpectrum
            The spectrum, with its standard errors over the members.
        """
        inputs = self._probe[0]
        need, (N, T) = transient + steps, inputs.shape[:2]
        E, repeats = min(sequences, N), -(-need // T)
        drive = torch.stack(
            [torch.cat([inputs[(i + E * j) % N] for j in range(repeats)])[:need] for i in range(E)]
        )
        return lyapkit.lyapunov_spectrum(
            self.model.as_map(),
            steps=steps,
            transient=transient,
            inputs=drive.detach().cpu().double().numpy(),
            ensemble=E,
            k=k,
            seed=0,
            backend=backend,
        )

    @classmethod
    def from_run(cls, path: str | Path) -> Trainer:
        """The trainer of a saved run, with the weights of its checkpoint.

        Parameters
        ----------
        path : str or pathlib.Path
            The run file ``<name>.nc``; its checkpoint ``<name>.ckpt.pt`` lies beside it.

        Returns
        -------
        Trainer
            A trainer built from the stored configuration, its model, optimizer and scheduler
            restored from the checkpoint.

        Raises
        ------
        FileNotFoundError
            There is no checkpoint beside the run file.
        lyapkit.trainers.trainer.RunError
            The checkpoint cannot be read.
        """
        path = Path(path)
        checkpoint = path.with_name(path.name.removesuffix(".nc") + ".ckpt.pt")
        if not checkpoint.exists():
            raise FileNotFoundError(
                f"no checkpoint {str(checkpoint)!r} beside the run {str(path)!r}"
            )
        trainer = cls(run_config(open_run(path)))
        trainer.path, trainer.checkpoint_path = path, checkpoint
        trainer._load_checkpoint()
        return trainer

    def _probe_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self._probe
        return inputs[:size], targets[:size]


def _lyapunov(trainer: Trainer, options: dict, cache: dict) -> Any:
    """Lyapunov spectrum of the cell driven by test sequences laid end to end."""
    model = trainer.model
    res = trainer.spectrum(
        options["steps"],
        transient=options["transient"],
        sequences=options["sequences"],
        k=options["k"] or None,
        backend=options["backend"],
    )
    data = {
        "exponents": (
            "exponent",
            res.exponents,
            {"long_name": "Lyapunov exponent", "units": "1/step"},
        ),
        "stderr": ("exponent", res.stderr, {"long_name": "standard error", "units": "1/step"}),
    }
    if hasattr(model, "theory") and getattr(model, "R", None) is not None:
        theory = model.theory().exponents[: len(res.exponents)]
        data["theory"] = (
            "exponent",
            theory,
            {"long_name": "weak-coupling prediction log|eig R|", "units": "1/step"},
        )
    import xarray as xr

    return xr.Dataset(data, coords={"exponent": np.arange(1, len(res.exponents) + 1)})


def _gradients(trainer: Trainer, options: dict, cache: dict) -> Any:
    """Gradient norms ‖∂L/∂x_t‖ over time (batch mean of their logarithm) and their rate."""
    from lyapkit.gradients import gradient_propagation

    inputs, targets = trainer._probe_batch(options["batch"])
    res = gradient_propagation(trainer.model, inputs, targets, trainer.task.loss)
    ds = res.to_xarray().drop_vars(["norm", "sample"])  # keep the batch statistics only
    ds["rate"] = (
        (),
        res.rate,
        {"long_name": "fitted rate of the gradient norm over the lag", "units": "1/step"},
    )
    ds.attrs = {}
    return ds


def _top_eigenvalues(trainer: Trainer, options: dict, cache: dict, kind: str) -> np.ndarray:
    key = (kind, options["k"], options["batch"])
    if key not in cache:
        data = trainer._probe_batch(options["batch"])
        op = lyapkit.CurvatureOperator(trainer.model, data, trainer.task.loss, kind=kind)
        cache[key] = op.eigenpairs(options["k"], tol=1e-3).eigenvalues
    return cache[key]


def _curvature(trainer: Trainer, options: dict, cache: dict) -> Any:
    """Top eigenvalues of the GGN or Hessian on a test batch."""
    import xarray as xr

    values = _top_eigenvalues(trainer, options, cache, options["kind"])
    return xr.Dataset(
        {
            "eigenvalues": (
                "eigenvalue",
                values,
                {"long_name": f"top {options['kind']} eigenvalue", "units": "1"},
            )
        },
        coords={"eigenvalue": np.arange(1, len(values) + 1)},
        attrs={"kind": options["kind"]},
    )


def _effective_lr(trainer: Trainer, options: dict, cache: dict) -> Any:
    """Effective learning rates: η·λ_i of the top GGN eigenvalues with the stability bound (SGD),
    or Adam's per-parameter rates from the optimizer state."""
    from lyapkit.effective import adam_effective_rates, sgd_effective_rates

    opt = trainer.config["optimizer"]
    lr = float(trainer.optimizer.param_groups[0]["lr"])
    if opt["name"] == "sgd":
        values = _top_eigenvalues(trainer, options, cache, "ggn")
        return sgd_effective_rates(values, lr, opt["momentum"]).to_xarray()
    if not trainer.optimizer.state:
        return None  # Adam has no second-moment estimate before its first step
    summary = adam_effective_rates(trainer.optimizer).to_xarray().reset_coords(drop=True)
    return summary[["tensor_mean", "tensor_median", "tensor_min", "tensor_max"]]


def _flossing_exponents(
    model: torch.nn.Module, options: dict, inputs: torch.Tensor, seed: int
) -> torch.Tensor:
    """Finite-time exponents ``(sequences, k)`` driven by batch rows ``e, e + S, …`` laid end to
    end (``S = sequences``) for ``transient + steps`` steps."""
    S, need = options["sequences"], options["transient"] + options["steps"]
    B, T = inputs.shape[:2]
    rows = (torch.arange(S)[:, None] + S * torch.arange(-(-need // T))[None]) % B
    drive = inputs[rows].flatten(1, 2)[:, :need]
    return finite_time_exponents(
        model,
        drive,
        options["k"],
        steps=options["steps"],
        transient=options["transient"],
        seed=seed,
    )


def _flossing(trainer: Trainer, options: dict, cache: dict) -> Any:
    """The finite-time exponents that gradient flossing penalised at this step (mean and spread
    over the sequences) and the penalty ``Σ_i (λ_i − target)²``; at step 0 (before training, no
    flossing) those of the first training batch."""
    import xarray as xr

    exponents, trainer._flossed = trainer._flossed, None
    if exponents is None:
        with torch.no_grad():
            exponents = _flossing_exponents(trainer.model, options, next(trainer._batches(0))[0], 0)
    values = exponents.double().cpu().numpy()
    spread = (
        values.std(0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else values[0] * np.nan
    )
    return xr.Dataset(
        {
            "exponents": (
                "exponent",
                values.mean(0),
                {
                    "long_name": "finite-time Lyapunov exponent (mean over sequences)",
                    "units": "1/step",
                },
            ),
            "stderr": ("exponent", spread, {"long_name": "standard error", "units": "1/step"}),
            "penalty": (
                (),
                float(flossing_loss(exponents.double(), options["target"])),
                {"long_name": "flossing penalty sum_i (lambda_i - target)^2", "units": "1/step^2"},
            ),
        },
        coords={"exponent": np.arange(1, values.shape[1] + 1)},
        attrs={"target": float(options["target"]), "weight": float(options["weight"])},
    )


DIAGNOSTICS: dict[str, Callable[[Trainer, dict, dict], Any]] = {
    "lyapunov": _lyapunov,
    "gradients": _gradients,
    "curvature": _curvature,
    "effective_lr": _effective_lr,
    "flossing": _flossing,
}
