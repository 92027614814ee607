"""Train the members of a grid that share an architecture together, in one vectorised pass.

A training step of a 32-unit WCRNN at batch 64 is some 400 small torch operations: about half of
its time is eager torch's cost per operation, and its 64×32 products run at about half the rate
MKL reaches on batched ones. :func:`train_group` stacks the weights of ``M`` members along a
leading *member* axis and runs their forward and backward passes together. On the CPU (with
numba installed) each member's whole sequence is one task of a compiled loop
(:mod:`lyapkit.backends._numba_group`: a BLAS product and the step's elementwise work per time
step, the members spread over the intra-op threads), so no operation is launched per time step;
elsewhere (a GPU) the passes are batched products (``torch.bmm``), one operation per time step
for all members. Member ``k`` computes exactly its own network,

    x_t^{(k)} = R^{(k)} x_{t−1}^{(k)} + γ^{(k)} ⊙ tanh(W^{(k)} x_{t−1}^{(k)} + V^{(k)} s_t^{(k)} + b^{(k)}),
    y^{(k)} = C^{(k)} x_T^{(k)} + c^{(k)},

on its own batch ``s^{(k)}`` (its own seed's batch order), and the objective ``Σ_k L^{(k)}`` has
the gradient ``∂L^{(k)}/∂θ^{(k)}`` in member ``k``'s slice: members never mix. Each member's
gradient is clipped by the norm of its own slice, ``g^{(k)} ← g^{(k)} · min(1, c / (‖g^{(k)}‖ +
10⁻⁶))`` (as ``torch.nn.utils.clip_grad_norm_``), and SGD (with momentum ``β`` and weight decay
``λ``) updates each slice with its own learning rate ``η^{(k)}``:
``d = g + λ θ``, ``m ← β m + d`` (``m = d`` at the first step), ``θ ← θ − η^{(k)} m``.

Everything else is each member's own :class:`~lyapkit.trainers.trainer.Trainer` bookkeeping, done
by a Trainer built from the member's configuration: its run file and checkpoint (same paths and
formats, so ``Trainer(config).train(resume=True)`` and :func:`lyapkit.open_run` read them), its
lock, its evaluation (metrics, best value, minimal-performance step), its diagnostics (Trainer's
own functions, on the member's unstacked module) and its summary. Results equal those of training
each member alone up to floating-point rounding (the batched products sum in another order).

Which configurations can be grouped is decided by :func:`group_key` from a whitelist.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lyapkit.losses import loss_terms_fn
from lyapkit.progress import Progress, progress_bar
from lyapkit.store import RunLock, RunStore, lock_run
from lyapkit.trainers.config import validate_config
from lyapkit.trainers.trainer import (
    _SMALL_MODEL,
    RunError,
    Trainer,
    TrainResult,
    _cpu_settings,
)

log = logging.getLogger(__name__)

__all__ = ["GROUPABLE_TASKS", "group_key", "train_group"]

#: Tasks whose models read out the last state (the grouped readout); their options must be equal.
GROUPABLE_TASKS = ("adding", "smnist", "psmnist", "scifar10", "sdigits", "psdigits")

# The keys of each table a grouped member may have. ``_FREE`` ones may differ between members;
# the others must be equal (they form the group key). A key outside this whitelist (a new option
# such as ``training.flossing``, or an unknown table) makes a configuration ungroupable.
_FREE = {
    "run": {"name", "dir", "seed", "threads"},
    "model": {"gamma", "residual"},
    "optimizer": {"lr"},
}
_EQUAL = {
    "run": {"device", "dtype"},
    "model": {"name", "hidden_size", "variant", "train_residual"},
    "optimizer": {"name", "momentum", "weight_decay", "clip_grad_norm", "betas", "eps"},
    "schedule": {"name", "step_size", "factor"},
    "training": {"steps", "batch_size", "eval_every", "checkpoint_every"},
}
# The diagnostics run per member (Trainer's functions on the member's synced model and SGD).
_DIAGNOSTICS = ("lyapunov", "gradients", "curvature", "effective_lr")
# The parameters of a grouped WCRNN, in the order of ``named_parameters()``.
_PARAMETERS = (
    "decoder.weight",
    "decoder.bias",
    "encoder.weight",
    "encoder.bias",
    "recurrent.weight",
)


def group_key(config: dict[str, Any]) -> tuple | None:
    """The key of the configurations that can train together with ``config`` in one group.

    Configurations with equal keys can be grouped (by :func:`lyapkit.trainers.group.train_group`);
    ``None`` means ``config`` cannot be grouped
    and must be trained alone. Members may differ only in ``run.name``, ``run.dir``, ``run.seed``
    (hence initial weights and batch order), ``run.threads``, ``model.residual``, ``model.gamma``,
    ``optimizer.lr`` and the options and schedules of the diagnostics; every other key must be
    equal. Supported: the linear-residual ``WCRNN`` (fixed residual) on a task of
    ``GROUPABLE_TASKS``, SGD (optionally with momentum, weight decay and gradient clipping),
    the constant schedule, and the diagnostics ``lyapunov``, ``gradients``, ``curvature`` and
    ``effective_lr``. Anything else (another model, variant or optimizer, a trained residual, a
    schedule, a model key it does not know) gives ``None``; an invalid configuration (an unknown
    table or key, say) is refused.

    Parameters
    ----------
    config : dict
        A run configuration (validated first).

    Returns
    -------
    tuple or None
        ``((dotted key, JSON value), …)`` of the keys that must be equal, sorted; or ``None``.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        ``config`` is not a valid configuration.

    See Also
    --------
    lyapkit.trainers.group.train_group : Trains configurations of equal keys together.
    lyapkit.trainers.sweep.run_sweep : Groups a sweep's runs with ``group=N``.

    Examples
    --------
    >>> from lyapkit.trainers.group import group_key
    >>> base = {"task": {"name": "adding", "T": 10}, "model": {"name": "WCRNN", "hidden_size": 4}}
    >>> a = group_key({**base, "model": {**base["model"], "gamma": 0.05}})
    >>> b = group_key({**base, "model": {**base["model"], "gamma": 0.1}, "run": {"seed": 1}})
    >>> a == b, a is None
    (True, False)
    >>> a[:2]
    (('model.hidden_size', '4'), ('model.name', '"WCRNN"'))
    >>> group_key({**base, "optimizer": {"name": "adam"}}) is None  # SGD only
    True
    """
    config = validate_config(config)
    if set(config) != {*_FREE, *_EQUAL, "task", "diagnostics"}:
        return None
    for table, keys in _EQUAL.items():
        if not set(config[table]) <= keys | _FREE.get(table, set()):
            return None
    model = config["model"]
    if (
        model["name"] != "WCRNN"
        or model.get("variant", "linear") != "linear"
        or model.get("train_residual", False)
        or config["optimizer"]["name"] != "sgd"
        or config["schedule"]["name"] != "constant"
        or config["task"]["name"] not in GROUPABLE_TASKS
        or not set(config["diagnostics"]) <= set(_DIAGNOSTICS)
    ):
        return None
    equal = {
        f"{table}.{key}": value
        for table, keys in _EQUAL.items()
        for key, value in config[table].items()
        if key in keys and key not in ("variant", "train_residual")
    }
    equal["task"] = config["task"]
    return tuple(sorted((key, json.dumps(value, sort_keys=True)) for key, value in equal.items()))


class _GroupLoop(torch.autograd.Function):
    """The last state of the linear-residual WCRNN of ``M`` members over a sequence, tape-free,
    members stacked.

    The member-stacked form of :class:`lyapkit.trainers.models.wcrnn._ResidualLoop`, with the same
    equations and the same evaluation ``tanh(z) = 2σ(2z) − 1``. Row ``t`` of the time-major
    buffer ``xs`` ``(T + 1, M, B, n + m + 1)`` is ``[x_t, s_{t+1}, 1]``, so one batched product per
    step with ``[[Rᵀ, 2Wᵀ], [0, 2Vᵀ], [−γ, 2b]]`` gives ``[R x_{t−1} − γ, 2 (W x_{t−1} + V s_t +
    b)]`` ``(M, B, 2n)`` in a buffer that every step reuses (it stays in the cache); ``σ`` of its
    second half is kept in row ``t`` of ``sigmoids`` ``(T, M, B, n)`` and ``x_t = (R x_{t−1} − γ)
    + 2γ ⊙ σ``. Only what the backward pass reads is kept for every step (``xs`` and
    ``sigmoids``), and every product writes a contiguous tensor (into a strided one, ``bmm`` falls
    back to a product per member). Backward, with ``g_t = ∂L/∂x_t`` from ``g_T = ∂L/∂x_T`` and
    ``δ'_t = g_t ⊙ σ(1 − σ)``::

        g_{t−1} = g_t R + δ'_t (4γ ⊙ W),
        [∂L/∂W, ∂L/∂V, ∂L/∂b] = 4γ ⊙ Σ_t δ'_tᵀ [x_{t−1}, s_t, 1].

    With ``compiled`` (CPU tensors), :mod:`lyapkit.backends._numba_group` runs both loops on the
    same buffers, a member per task on ``torch.get_num_threads()`` threads; the torch loops here
    run on other devices and check them (``tests/test_numba_group.py``).
    """

    @staticmethod
    def forward(ctx, inputs, V, b, R, W, gamma, compiled):
        """``inputs`` ``(T, M, B, m)``; returns the last states ``x_T`` ``(M, B, n)``."""
        n, (steps, members, batch, m) = R.shape[-1], inputs.shape
        width = n + m + 1
        xs = inputs.new_empty((steps + 1, members, batch, width))
        weights = inputs.new_zeros((members, width, 2 * n))
        weights[:, :n, :n] = R.transpose(1, 2)
        weights[:, :n, n:] = 2 * W.transpose(1, 2)
        weights[:, n : n + m, n:] = 2 * V.transpose(1, 2)
        weights[:, n + m, :n] = -gamma
        weights[:, n + m, n:] = 2 * b
        sigmoids = inputs.new_empty((steps, members, batch, n))
        if compiled:
            with _torch_threads_kept() as threads:
                _member_loops().group_forward(
                    inputs.numpy(), xs.numpy(), weights.numpy(), sigmoids.numpy(),
                    (2 * gamma).numpy(), threads,
                )  # fmt: skip
        else:
            xs[0, ..., :n], xs[steps, ..., n:] = 0, 0
            xs[:steps, ..., n : n + m] = inputs
            xs[:steps, ..., n + m] = 1
            row = inputs.new_empty((members, batch, 2 * n))
            first, second = row[..., :n], row[..., n:]
            gamma2 = 2 * gamma[:, None]
            x, states, sig = xs.unbind(0), xs[..., :n].unbind(0), sigmoids.unbind(0)
            for t in range(steps):
                torch.bmm(x[t], weights, out=row)
                torch.addcmul(first, torch.sigmoid(second, out=sig[t]), gamma2, out=states[t + 1])
        ctx.save_for_backward(sigmoids, xs, R, W, gamma)
        ctx.m, ctx.compiled = m, compiled
        return xs[-1, ..., :n]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_last):
        sigmoids, xs, R, W, gamma = ctx.saved_tensors
        n, m, steps = R.shape[-1], ctx.m, sigmoids.shape[0]
        scale = 4 * gamma
        scaled_W = scale[:, :, None] * W
        grad = xs.new_zeros((*W.shape[:2], xs.shape[-1]))  # Σ_t δ'_tᵀ [x_{t−1}, s_t, 1]
        g = grad_last.contiguous()
        if ctx.compiled:
            with _torch_threads_kept() as threads:
                _member_loops().group_backward(
                    xs.numpy(), sigmoids.numpy(), torch.cat([R, scaled_W], 1).numpy(),
                    g.numpy(), grad.numpy(), threads,
                )  # fmt: skip
        else:
            sig, x = sigmoids.unbind(0), xs.unbind(0)
            delta, g_next = torch.empty_like(g), torch.empty_like(g)
            for t in range(steps - 1, -1, -1):
                torch.addcmul(sig[t], sig[t], sig[t], value=-1, out=delta).mul_(g)
                grad.baddbmm_(delta.transpose(1, 2), x[t])
                if t:
                    torch.bmm(g, R, out=g_next).baddbmm_(delta, scaled_W)
                    g, g_next = g_next, g
        grad.mul_(scale[:, :, None])
        return None, grad[..., n : n + m], grad[..., n + m], None, grad[..., :n], None, None


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[int]:
    """Torch's intra-op thread count, set back afterwards if numba changed it (its first thread
    setting in a process can, see :mod:`lyapkit.backends._numba_group`)."""
    threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@functools.cache
def _member_loops() -> Any:
    """:mod:`lyapkit.backends._numba_group`, or None where numba is not installed."""
    try:
        from lyapkit.backends import _numba_group
    except ImportError:
        return None
    return _numba_group


@dataclass
class _Member:
    """One member of a running group: its trainer, store, lock and place in the config list."""

    index: int
    trainer: Trainer
    store: RunStore
    lock: RunLock
    start: int
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None


class _Group:
    """The stacked weights, momentum buffers and learning rates of the active members."""

    def __init__(self, members: list[_Member]):
        self.members = members
        trainers = [m.trainer for m in members]
        first = trainers[0]
        self.loss = loss_terms_fn(first.task.loss)
        opt = first.config["optimizer"]
        self.momentum, self.weight_decay = opt["momentum"], opt["weight_decay"]
        self.clip = opt["clip_grad_norm"]
        with torch.no_grad():
            params = [dict(t.model.named_parameters()) for t in trainers]
            self.params = {name: torch.stack([p[name] for p in params]) for name in _PARAMETERS}
            self.buffers: dict[str, torch.Tensor | None] = {}
            for name in _PARAMETERS:
                states = [
                    t.optimizer.state.get(p[name], {})
                    for t, p in zip(trainers, params, strict=True)
                ]
                buffers = [state.get("momentum_buffer") for state in states]
                self.buffers[name] = (
                    None if any(b is None for b in buffers) else torch.stack(buffers)
                )
            self.R = torch.stack([t.model.R for t in trainers])
            self.gamma = torch.stack([t.model.gamma for t in trainers])
        self.compiled = first.device.type == "cpu" and _member_loops() is not None
        lrs = [t.config["optimizer"]["lr"] for t in trainers]
        self.lr = torch.tensor(lrs, dtype=first.dtype, device=first.device)

    def keep(self, keep: list[int]) -> None:
        """Keep only the members at positions ``keep`` (the others failed)."""
        index = torch.tensor(keep, dtype=torch.long, device=self.lr.device)
        self.members = [self.members[i] for i in keep]
        for name in _PARAMETERS:
            self.params[name] = self.params[name][index]
            if self.buffers[name] is not None:
                self.buffers[name] = self.buffers[name][index]
        self.R, self.gamma, self.lr = self.R[index], self.gamma[index], self.lr[index]

    def outputs(self, inputs: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Readouts ``(M, B, output)`` of the members for ``inputs`` ``(M, B, T, m)``."""
        last = _GroupLoop.apply(
            inputs.transpose(0, 2).transpose(1, 2),  # (T, M, B, m)
            params["encoder.weight"],
            params["encoder.bias"],
            self.R,
            params["recurrent.weight"],
            self.gamma,
            self.compiled,
        )
        return torch.baddbmm(
            params["decoder.bias"][:, None], last, params["decoder.weight"].transpose(1, 2)
        )

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> list[float]:
        """One SGD step of every member; returns the members' batch losses (before the step)."""
        params = {name: p.requires_grad_() for name, p in self.params.items()}
        outputs = self.outputs(inputs, params)
        M = outputs.shape[0]
        losses = self.loss(outputs, targets).reshape(M, -1).mean(1)
        grads = dict(
            zip(_PARAMETERS, torch.autograd.grad(losses.sum(), list(params.values())), strict=True)
        )
        with torch.no_grad():
            for p in params.values():
                p.requires_grad_(False)
            if self.clip > 0:
                norms = torch.stack([g.reshape(M, -1).norm(dim=1) for g in grads.values()], 1)
                total = norms.norm(dim=1)
                factor = (self.clip / (total + 1e-6)).clamp(max=1.0)
                for g in grads.values():
                    g.mul_(factor.view(M, *[1] * (g.ndim - 1)))
            for name, g in grads.items():
                p = self.params[name]
                if self.weight_decay:
                    g = g.add(p, alpha=self.weight_decay)
                if self.momentum:
                    buf = self.buffers[name]
                    if buf is None:
                        self.buffers[name] = buf = g.clone()
                    else:
                        buf.mul_(self.momentum).add_(g)
                    g = buf
                p.addcmul_(g, self.lr.view(M, *[1] * (g.ndim - 1)), value=-1)
        return losses.tolist()

    @torch.no_grad()
    def unstack(self, position: int, step: int) -> None:
        """Copy member ``position``'s slice into its trainer's model and optimizer (momentum
        buffers), and set its scheduler's step count to ``step``: the trainer's state after
        ``step`` steps, for its diagnostics and checkpoints."""
        trainer = self.members[position].trainer
        params = dict(trainer.model.named_parameters())
        for name in _PARAMETERS:
            params[name].copy_(self.params[name][position])
            if self.buffers[name] is not None:
                state = trainer.optimizer.state[params[name]]
                state["momentum_buffer"] = self.buffers[name][position].clone()
        scheduler = trainer.scheduler.state_dict()
        scheduler.update(last_epoch=step, _step_count=step + 1)
        trainer.scheduler.load_state_dict(scheduler)


def _open(trainer: Trainer, resume: bool, overwrite: bool) -> tuple[RunStore, int] | TrainResult:
    """The store and the last step done (−1: none) of a member, as :meth:`Trainer.train` opens
    them; or the result of a finished run."""
    name, directory = trainer.config["run"]["name"], trainer.path.parent
    present = [p.name for p in (trainer.path, trainer.checkpoint_path) if p.exists()]
    if resume and trainer.path.exists():
        return trainer._open_for_resume()
    if resume and present:
        raise RunError(
            f"cannot resume run {name!r}: its checkpoint {str(trainer.checkpoint_path)!r} has no "
            f"run file {trainer.path.name!r} beside it; pass overwrite=True to start it afresh"
        )
    if present and not overwrite:
        raise RunError(
            f"run {name!r} exists in {str(directory)!r} ({', '.join(present)}); pass resume=True "
            "to continue it or overwrite=True to replace it"
        )
    if present:
        log.info("replacing the run %s (%s)", name, ", ".join(present))
    trainer.checkpoint_path.unlink(missing_ok=True)
    return trainer._new_store(), -1


def _each(group: _Group, action: Callable[[int, _Member], None]) -> dict[int, Exception]:
    """``action(position, member)`` for every member; the exceptions raised, by position."""
    failed = {}
    for k, member in enumerate(group.members):
        try:
            action(k, member)
        except Exception as err:  # that member's failure alone, as Trainer would raise it
            failed[k] = err
    return failed


def _drop(group: _Group, failed: dict[int, Exception], results: list[Any]) -> None:
    """Record each failed member's exception as its result, release its lock and go on
    without it."""
    for k, err in failed.items():
        member = group.members[k]
        results[member.index] = err
        log.error("run %s failed: %s", member.trainer.path, err)
        member.lock.release()
    if failed:
        group.keep([k for k in range(len(group.members)) if k not in failed])


@torch.no_grad()
def _evaluate(group: _Group, step: int) -> dict[int, Exception]:
    """Evaluate every member on the (common) test set in one batched pass, and record it;
    the members whose recording failed, by position."""
    if not group.members:
        return {}
    tick = time.perf_counter()
    inputs = group.members[0].trainer._probe[0]
    M = len(group.members)
    chunk = max(1, 1024 // M)  # test samples per pass: M × chunk rows, as a training batch
    outputs = torch.cat(
        [group.outputs(x.expand(M, *x.shape), group.params) for x in inputs.split(chunk)], 1
    )
    seconds = (time.perf_counter() - tick) / M

    def record(k: int, member: _Member) -> None:
        trainer = member.trainer
        train_loss = float(np.mean(trainer._running)) if trainer._running else math.nan
        trainer._running.clear()
        trainer._record_evaluation(member.store, step, train_loss, outputs[k], seconds)

    return _each(group, record)


def _diagnostics(group: _Group, step: int) -> dict[int, Exception]:
    """Each member's diagnostics due at ``step``, by Trainer's own functions on its own model;
    the members whose diagnostics failed, by position."""

    def run(k: int, member: _Member) -> None:
        trainer = member.trainer
        if any(step in steps for steps, _ in trainer.diagnostics.values()):
            group.unstack(k, step)
            trainer._run_diagnostics(member.store, step)

    return _each(group, run)


def _checkpoints(group: _Group, step: int) -> dict[int, Exception]:
    """Flush each member's store, then write its checkpoint at ``step`` (as Trainer does); the
    members that failed, by position."""

    def save(k: int, member: _Member) -> None:
        member.store.flush()
        group.unstack(k, step)
        member.trainer._save_checkpoint(step)

    return _each(group, save)


def _threads(members: Sequence[_Member]) -> int:
    """Intra-op threads: ``run.threads`` of the first member, or for 0 (auto) one thread while
    the whole group is small (``M × batch × state² ≤ 2¹⁷``, as :meth:`Trainer._threads`)."""
    trainer = members[0].trainer
    threads = trainer.config["run"]["threads"]
    if threads or trainer.device.type != "cpu":
        return threads
    size = len(members) * trainer.config["training"]["batch_size"] * trainer.model.state_size**2
    return 1 if size <= _SMALL_MODEL else 0


def _train_together(
    members: list[_Member], results: list[Any], progress: bool | Progress | None
) -> None:
    """Train members that are at the same step to the end; fill in their ``results``."""
    config = members[0].trainer.config
    training, start = config["training"], members[0].start
    total = training["steps"]
    device = members[0].trainer.device
    with _cpu_settings(device, _threads(members)):
        group = _Group(members)
        if start < 0:
            start = 0
            _drop(group, _evaluate(group, 0), results)
            _drop(group, _diagnostics(group, 0), results)
        for member in group.members:
            member.batches = member.trainer._batches(start)
        bar = progress_bar(progress, total - start, f"training {len(members)} runs")
        # as Trainer: denormals flushed to zero in the training steps, not at step 0
        torch.set_flush_denormal(device.type == "cpu")
        try:
            for step in range(start + 1, total + 1):
                if not group.members:
                    break
                tick = time.perf_counter()
                data = [next(member.batches) for member in group.members]
                inputs = torch.stack([x for x, _ in data])
                targets = torch.stack([y for _, y in data])
                losses = group.step(inputs, targets)
                share = (time.perf_counter() - tick) / len(group.members)
                bar.update(1)
                diverged = {}
                for k, (member, loss) in enumerate(zip(group.members, losses, strict=True)):
                    member.trainer.seconds["training"] += share
                    member.trainer._running.append(loss)
                    if not math.isfinite(loss):
                        member.store.flush()
                        diverged[k] = FloatingPointError(
                            f"the training loss became {loss} at step {step}"
                        )
                _drop(group, diverged, results)
                if step % training["eval_every"] == 0 or step == total:
                    _drop(group, _evaluate(group, step), results)
                _drop(group, _diagnostics(group, step), results)
                if step % training["checkpoint_every"] == 0 or step == total:
                    _drop(group, _checkpoints(group, step), results)
            bar.close()
        finally:
            torch.set_flush_denormal(False)

    def finish(_: int, member: _Member) -> None:
        results[member.index] = member.trainer._finish(member.store)
        member.lock.release()

    _drop(group, _each(group, finish), results)


def train_group(
    configs: Sequence[dict[str, Any]],
    *,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool | Progress | None = None,
) -> list[TrainResult | Exception]:
    """Train runs whose configurations share a group key together, each in its own run store.

    The ``M`` members' weights are stacked along a leading member axis and each step runs all of
    them as batched products: member ``k`` computes exactly its own linear-residual WCRNN [1]_
    on its own batch ``s^{(k)}`` (its own seed's batch order),

    ``x_t^{(k)} = R^{(k)} x_{t−1}^{(k)} + γ^{(k)} ⊙ tanh(W^{(k)} x_{t−1}^{(k)} + V^{(k)} s_t^{(k)} + b^{(k)})``,
    ``y^{(k)} = C^{(k)} x_T^{(k)} + c^{(k)}``,

    and the objective ``Σ_k L^{(k)}`` has the gradient ``∂L^{(k)}/∂θ^{(k)}`` in member ``k``'s
    slice. Each member's gradient is clipped by its own norm, ``g ← g · min(1, c / (‖g‖ +
    10⁻⁶))``, and SGD updates it with its own learning rate: ``d = g + λ θ``,
    ``m ← β m + d`` (``m = d`` at the first step), ``θ ← θ − η^{(k)} m``. Each member is
    recorded as :meth:`lyapkit.trainers.trainer.Trainer.train` records it (run file,
    checkpoint, evaluation, diagnostics, summary), equal to training it alone up to
    floating-point rounding.

    Each member holds its lock ``<run.name>.lock`` while it trains. With ``resume`` (the default,
    a sweep's semantics) a finished member is skipped (its result has ``already_finished``), an
    interrupted one continues from its checkpoint after Trainer's checks (same run id, no changed
    key that changes the result), a new one starts; ``overwrite`` replaces existing runs; with
    neither, an existing run is refused. Members that continue from the same step train together;
    members at different steps are trained as separate groups one after another (simplest correct
    behaviour: a group steps in lockstep).

    Parameters
    ----------
    configs : sequence of dict
        Run configurations with equal, non-None :func:`lyapkit.trainers.group.group_key` and
        distinct run files.
    resume : bool, default True
        As for :meth:`lyapkit.trainers.trainer.Trainer.train`: continue (or skip) existing runs.
    overwrite : bool, default False
        As for :meth:`lyapkit.trainers.trainer.Trainer.train`: replace existing runs; excludes
        ``resume``.
    progress : bool or lyapkit.Progress, optional
        One bar per group of members at the same step (quiet off a terminal); default off.

    Returns
    -------
    list of TrainResult or Exception
        One entry per configuration, in order: its
        :class:`lyapkit.trainers.trainer.TrainResult`, or the exception that
        stopped that member alone, as ``Trainer(config).train()`` would raise it:
        ``FloatingPointError`` when its training loss became non-finite (its store keeps the
        records up to then, its checkpoint the last one, as Trainer leaves them),
        :class:`lyapkit.trainers.trainer.RunError` when it could not start or resume,
        ``lyapkit.store.RunLockedError`` when another process holds its lock, or whatever its
        evaluation, diagnostics, checkpoint or files raised (a ``ValueError`` for a file that is
        not a run store, say). The other members go on.

    Raises
    ------
    ValueError
        ``configs`` is empty, holds a configuration that cannot be grouped or two with different
        keys, or names one run file twice; ``resume`` and ``overwrite`` are both set.
    lyapkit.trainers.config.ConfigError
        A configuration is invalid (checked for every member before anything is written).

    See Also
    --------
    lyapkit.trainers.group.group_key : Which configurations can be grouped.
    lyapkit.trainers.trainer.Trainer : Trains one run.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    Two seeds trained together give what each gives alone:

    >>> from lyapkit.trainers.group import train_group
    >>> from lyapkit.trainers.trainer import Trainer
    >>> base = {
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2},
    ... }
    >>> configs = [{**base, "run": {"name": f"g{i}", "dir": "runs-group", "seed": i}}
    ...            for i in range(2)]
    >>> results = train_group(configs)
    >>> [result.path.name for result in results]
    ['g0.nc', 'g1.nc']
    >>> alone = Trainer({**base, "run": {"name": "alone", "dir": "runs-group", "seed": 1}}).train()
    >>> bool(abs(alone.best_metric - results[1].best_metric) < 1e-5)
    True
    >>> [result.already_finished for result in train_group(configs)]  # resumed: nothing to do
    [True, True]
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: pick one")
    if not configs:
        raise ValueError("configs must hold at least one configuration, got none")
    keys = [group_key(config) for config in configs]
    for i, key in enumerate(keys):
        if key is None:
            raise ValueError(
                f"configs[{i}] (run {configs[i].get('run', {}).get('name', 'run')!r}) cannot be "
                "trained in a group (see group_key); train it with Trainer"
            )
        if key != keys[0]:
            differ = sorted(set(key) ^ set(keys[0]))
            raise ValueError(
                f"configs[{i}] cannot be grouped with configs[0]: they differ in "
                f"{sorted({k for k, _ in differ})}"
            )
    trainers = [Trainer(config) for config in configs]
    paths = [t.path.resolve() for t in trainers]
    if len(set(paths)) < len(paths):
        twice = sorted({str(p) for p in paths if paths.count(p) > 1})
        raise ValueError(f"configs name the run file(s) {twice} more than once")
    for trainer in trainers:
        trainer._validate()
    results: list[Any] = [None] * len(configs)
    starts: dict[int, list[_Member]] = {}
    try:
        for index, trainer in enumerate(trainers):
            try:
                lock = lock_run(trainer.lock_path)
            except OSError as err:  # RunLockedError, or the directory is not writable
                results[index] = err
                continue
            try:
                opened = _open(trainer, resume, overwrite)
            except BaseException as err:  # RunError, a file that is no run store, an interrupt
                lock.release()
                if not isinstance(err, Exception):
                    raise
                results[index] = err
                continue
            if isinstance(opened, TrainResult):
                lock.release()
                results[index] = opened
                continue
            store, start = opened
            member = _Member(index, trainer, store, lock, start)
            starts.setdefault(start, []).append(member)
        for start in sorted(starts):
            _train_together(starts[start], results, progress)
    finally:
        for members in starts.values():
            for member in members:
                member.lock.release()
    return results
