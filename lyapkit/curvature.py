"""Curvature of a model's loss: Hessian and GGN operators, their spectra, and their decomposition
over unrolled time.

For a model ``y = f(u; θ)`` and the data-set mean loss ``L(θ) = (1/N) Σ_terms ℓ(y, ŷ)`` (see
:mod:`lyapkit.losses`) the operators are::

    Hessian  H = ∇²_θ L                       H v   = (vᵀ ∂∇L/∂θ)ᵀ                (reverse-over-reverse)
    GGN      G = (1/N) Σ_b J_bᵀ H_ℓ,b J_b     G v   = Jᵀ (H_ℓ (J v))              (jvp → loss Hessian → vjp)

with ``J = ∂y/∂θ`` and ``H_ℓ = ∇²_y Σ ℓ`` (Schraudolph 2002; Martens 2020). Both are evaluated with
``torch.func`` on the model's reference path (the differentiable loop over its cell, when the model
has one), batch by batch and summed with each batch weighted by its number of loss terms, so a
loader with unequal batches gives the operator of the whole data set.

Per-time decomposition (Dubinin & Effenberger 2023, eqs. 9–10): untie the parameters of a recurrent
model into one copy ``θ_s`` per unrolled step (or per bin of steps) and one for the readout; then
``H = Σ_{s,t} H_{st}`` with ``H_{st} = ∂²L/∂θ_s∂θ_t``, and the contribution of unrolled layer ``s``
to the curvature ``vᵀHv`` along ``v`` is ``c_s = vᵀ (Σ_t H_{st}) v``, so that ``Σ_s c_s = vᵀHv`` (the
eigenvalue, for a unit eigenvector). With all copies moved together along ``v``,
``Σ_t H_{st} v = d/dε ∂L/∂θ_s (θ + εv)``: one forward-over-reverse pass gives every ``c_s``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np

from lyapkit import unrolled
from lyapkit._array import import_optional
from lyapkit._checks import integer
from lyapkit.losses import LossTerms, loss_terms_fn
from lyapkit.operators import LinearOperator
from lyapkit.recurrent import reference_path
from lyapkit.unrolled import LayerContributions

log = logging.getLogger(__name__)

KINDS = ("ggn", "hessian")


def _is_batch(data: Any) -> bool:
    torch = import_optional("torch", "torch")
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(d, torch.Tensor) for d in data)
    )


_DATA = (
    "data must be one (inputs, targets) batch, a tuple or list of two tensors, or a re-iterable "
    "collection of such batches (a DataLoader or a list of them)"
)


def _check_data(data: Any) -> None:
    """A TypeError saying what ``data`` must be, for what can be checked without iterating a
    loader: a bare tensor or array, a one-shot iterator, or a list of things that are not
    batches."""
    if _is_batch(data):
        return
    if hasattr(data, "shape") and hasattr(data, "dtype"):
        raise TypeError(
            f"{_DATA}; got a bare {type(data).__name__} of shape {tuple(data.shape)}: pass "
            "(inputs, targets)"
        )
    try:
        one_shot = iter(data) is data
    except TypeError:
        raise TypeError(f"{_DATA}; got {type(data).__name__}") from None
    if one_shot:
        raise TypeError(f"{_DATA}; a one-shot iterator is consumed by the first product")
    if isinstance(data, (tuple, list)):
        if not data:
            raise TypeError(f"{_DATA}; got an empty {type(data).__name__}")
        bad = [i for i, batch in enumerate(data) if not _is_batch(batch)]
        if bad:
            item = data[bad[0]]
            shape = f" of shape {tuple(item.shape)}" if hasattr(item, "shape") else ""
            raise TypeError(f"{_DATA}; item {bad[0]} of data is a {type(item).__name__}{shape}")


def _batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of one item of a collection of batches (checked)."""
    if not _is_batch(batch):
        shape = f" of shape {tuple(batch.shape)}" if hasattr(batch, "shape") else ""
        raise TypeError(f"{_DATA}; a batch of data is a {type(batch).__name__}{shape}")
    return batch[0], batch[1]


class CurvatureOperator(LinearOperator):
    """The Hessian or GGN of a model's data-set mean loss, as a linear operator on its parameters.

    With ``L(θ) = (1/N) Σ ℓ(f(u; θ), ŷ)``, ``J = ∂y/∂θ`` and ``H_ℓ = ∇²_y Σ ℓ``,
    ``H v = (vᵀ ∂∇L/∂θ)ᵀ`` (reverse-over-reverse: H is symmetric) or ``G v = Jᵀ H_ℓ J v`` (jvp →
    loss Hessian → vjp), summed over the batches of ``data`` with weights ``n_b / N`` (``n_b`` loss terms in batch
    ``b``, ``N`` in all). Vectors live on the selected parameters flattened in order (each tensor
    row-major); the operator reads the model's current parameters at every product.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(inputs)``. A model with a ``reference_path()`` context (lyapkit's
        recurrent models, PyTorch RNNs wrapped by :func:`lyapkit.adapt`) is evaluated inside it,
        since fused fast paths are not twice differentiable; on CUDA, cuDNN is disabled for the
        passes (cuDNN RNNs support neither double backward nor forward-mode AD). The per-time
        decompositions (:meth:`lyapkit.CurvatureOperator.layer_contributions`,
        :meth:`lyapkit.CurvatureOperator.block_matrix`) need a
        :class:`lyapkit.RecurrentNetwork`.
    data : (inputs, targets) or iterable of them
        One batch, or a re-iterable collection of batches (a ``DataLoader`` or a list).
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        A name (``"mse"``: ``(y − ŷ)²`` per output element; ``"cross_entropy"``:
        ``−log softmax(y)_c`` per output vector), or ``loss(outputs, targets)`` returning the
        unreduced per-term losses.
    kind : {"ggn", "hessian"}, default "ggn"
        Which curvature matrix.
    parameters : sequence of str, optional
        Names (as in ``model.named_parameters()``) of the parameters the operator acts on; default:
        all parameters that require grad. The others are held fixed.
    chunk : int, default 8
        Columns multiplied together in one batched pass. GGN columns each hold their own tangents
        of the unrolled network's intermediate values (``O(batch · T · state)``), and Hessian
        columns their cotangents while they are pulled back, so memory grows with ``chunk`` while
        the time per column falls; lower it for long sequences.

    Attributes
    ----------
    parameter_names : list of str
        The selected parameters, in the order of the flat vectors.
    parameter_shapes : list of tuple of int
        Their shapes.
    num_params : int
        ``P``, the number of selected parameter entries.
    kind : {"ggn", "hessian"}
        Which curvature matrix.
    dtype, device : torch.dtype, torch.device
        Those of the first selected parameter; products are computed in them.
    loss_terms : callable
        The per-term loss ``(outputs, targets) -> losses``.

    Raises
    ------
    TypeError
        ``model`` is not a ``torch.nn.Module``; ``data`` is not a batch or a re-iterable
        collection of batches (a bare tensor, a one-shot iterator, an empty list, or a list with
        an item that is not a pair of tensors).
    ValueError
        ``chunk`` not a positive integer; ``kind`` unknown; ``parameters`` naming no parameter or
        one the model lacks; an unknown loss name.

    See Also
    --------
    lyapkit.LinearOperator : The interface it shares with every lyapkit operator.
    lyapkit.map_ggn : The GGN of a map's readouts without autodiff.
    lyapkit.sgd_effective_rates : Effective learning rates of the eigenvalues.
    lyapkit.preconditioned_sharpness : Adam's preconditioned sharpness from ``op.matvec``.

    Notes
    -----
    A :class:`lyapkit.LinearOperator`: ``op @ V`` multiplies ``(P,)`` or ``(P, k)`` vectors,
    torch tensors (computed in the model's dtype on its device, returned in the tensor's) or numpy
    arrays (returned in float64), ``chunk`` columns batched with ``torch.func.vmap``;
    :meth:`lyapkit.LinearOperator.to_scipy` hands it to ``scipy.sparse.linalg``.

    References
    ----------
    .. [1] N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
       descent", Neural Computation 14(7), 1723–1738, 2002.
    .. [2] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023 (eqs. 9–10: the per-time decomposition).

    Examples
    --------
    For a linear model ``y = W u + b`` under ``mse`` the Hessian is ``(2/N) Xᵀ X`` with
    ``X = [u, 1]`` (it equals the GGN):

    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> u = torch.randn(20, 3, dtype=torch.float64)
    >>> y = torch.randn(20, 1, dtype=torch.float64)
    >>> op = lk.CurvatureOperator(model, (u, y), "mse", kind="hessian")
    >>> op.shape, op.parameter_names
    ((4, 4), ['weight', 'bias'])
    >>> X = torch.cat([u, torch.ones(20, 1, dtype=torch.float64)], 1)
    >>> bool(np.allclose(op.dense(), 2 * (X.T @ X).numpy() / 20))
    True
    >>> op.eigenpairs(k=2).eigenvalues.round(3)
    array([2.979, 2.618])
    >>> round(op.trace(num_matvecs=12), 3), round(float(np.trace(op.dense())), 3)
    (8.356, 8.356)
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        loss: str | LossTerms = "cross_entropy",
        *,
        kind: Literal["ggn", "hessian"] = "ggn",
        parameters: Sequence[str] | None = None,
        chunk: int = 8,
    ):
        self._torch = torch = import_optional("torch", "torch")
        self.chunk = integer(chunk, "chunk", 1)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        _check_data(data)
        named = dict(model.named_parameters())
        if parameters is None:
            names = [n for n, p in named.items() if p.requires_grad]
        else:
            names = list(parameters)
            unknown = [n for n in names if n not in named]
            if unknown:
                raise ValueError(
                    f"parameters {unknown} are not parameters of the model; it has {list(named)}"
                )
        if not names:
            raise ValueError("parameters must name at least one parameter of the model")
        self.model, self.data = model, data
        self.loss_terms = loss_terms_fn(loss)
        first = named[names[0]]
        self._set_parameters(
            names,
            [named[n].shape for n in names],
            kind=kind,
            dtype=first.dtype,
            device=first.device,
        )
        self._sizes = [named[n].numel() for n in names]
        self._num_terms: int | None = None

    # --- plumbing -------------------------------------------------------------------------------

    def batches(self) -> Iterable[tuple[Any, Any]]:
        """The ``(inputs, targets)`` batches, moved to the model's device.

        Yields
        ------
        tuple of torch.Tensor
            ``(inputs, targets)`` of each batch of ``data`` (the one batch when ``data`` is one).

        Raises
        ------
        TypeError
            An item of ``data`` is not a pair of tensors.
        """
        batches = [self.data] if _is_batch(self.data) else self.data
        for batch in batches:
            inputs, targets = _batch(batch)
            yield inputs.to(self.device), targets.to(self.device)

    def parameters(self) -> dict[str, Any]:
        """The selected parameters' current values (detached).

        Returns
        -------
        dict of str to torch.Tensor
            One tensor per selected parameter, in order (no copies: they share the model's
            storage).
        """
        named = dict(self.model.named_parameters())
        return {n: named[n].detach() for n in self.parameter_names}

    def flatten(self, tensors: dict[str, Any], batch_dims: int = 0) -> Any:
        """Concatenate a dict of ``(..., *shape)`` tensors into ``(..., P)``.

        The inverse of :meth:`lyapkit.LinearOperator.unflatten`.

        Parameters
        ----------
        tensors : dict of str to torch.Tensor
            One tensor per selected parameter (extra keys are ignored).
        batch_dims : int, default 0
            Number of leading batch dimensions ``...`` kept.

        Returns
        -------
        torch.Tensor
            ``(..., P)``.
        """
        return self._torch.cat(
            [
                tensors[n].reshape(tensors[n].shape[:batch_dims] + (-1,))
                for n in self.parameter_names
            ],
            dim=-1,
        )

    @contextlib.contextmanager
    def _evaluation(self):
        """Reference path of the model, cuDNN off on CUDA, no autograd tape outside torch.func."""
        torch = self._torch
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            stack.enter_context(reference_path(self.model))
            if self.device.type == "cuda":
                stack.enter_context(torch.backends.cudnn.flags(enabled=False))
            try:
                yield
            except RuntimeError as err:
                text = str(err)
                if any(s in text for s in ("once_differentiable", "forward AD", "double backward")):
                    raise RuntimeError(
                        f"the model cannot be differentiated twice or in forward mode ({text}); "
                        "give it a reference_path() context that switches to a plain loop over "
                        "its cell, or run it without fused kernels"
                    ) from err
                raise

    def _outputs(self, params: dict[str, Any], inputs: Any) -> Any:
        return self._torch.func.functional_call(self.model, params, (inputs,))

    def _loss_sum(self, targets: Any) -> Callable[[Any], Any]:
        return lambda outputs: self.loss_terms(outputs, targets).sum()

    @property
    def num_terms(self) -> int:
        """``N``: the number of loss terms in the data set (one forward pass, then cached).

        Raises
        ------
        ValueError
            ``data`` holds no loss terms.
        """
        if self._num_terms is None:
            params, n = self.parameters(), 0
            with self._evaluation():
                for inputs, targets in self.batches():
                    n += self.loss_terms(self._outputs(params, inputs), targets).numel()
            if n == 0:
                raise ValueError("data holds no loss terms")
            self._num_terms = n
        return self._num_terms

    def _sum_over_data(self, per_batch: Callable[[dict, Any, Any], Any]) -> Any:
        """``(1/N) Σ_b per_batch(params, inputs, targets)`` (each a sum over the batch's terms)."""
        params, total = self.parameters(), None
        n = self.num_terms
        with self._evaluation():
            for inputs, targets in self.batches():
                part = per_batch(params, inputs, targets)
                total = part if total is None else total + part
        return total / n

    # --- products ---------------------------------------------------------------------------------

    def _product(self, params: dict, inputs: Any, targets: Any, V: dict) -> Any:
        """``Σ_terms`` curvature times each of the directions ``V`` (``(k, *shape)`` per name)."""
        func = self._torch.func
        loss_sum = self._loss_sum(targets)
        if self.kind == "hessian":
            # Reverse-over-reverse: the gradient's graph is built once and every column pulled
            # back through it. Forward-over-reverse (jvp of the gradient) carries a tangent of
            # every intermediate value per column: on the 784-step WCRNN of
            # benchmarks/bench_curvature.py it took 2.5x the time and 1.5x the memory.
            gradient = func.grad(lambda p: loss_sum(self._outputs(p, inputs)))
            pullback = func.vjp(gradient, params)[1]
            return func.vmap(lambda v: pullback(v)[0])(V)
        outputs, pullback = func.vjp(lambda p: self._outputs(p, inputs), params)
        output_hvp = func.grad(loss_sum)

        def ggn_vector(v):
            Jv = func.jvp(lambda p: self._outputs(p, inputs), (params,), (v,))[1]
            return pullback(func.jvp(output_hvp, (outputs,), (Jv,))[1])[0]

        return func.vmap(ggn_vector)(V)

    def _matmat(self, V: Any) -> Any:
        """``C V`` for a ``(P, k)`` tensor, ``chunk`` columns per batched pass."""
        columns = []
        for start in range(0, V.shape[1], self.chunk):
            block = self.unflatten(V[:, start : start + self.chunk].T.contiguous())
            out = self._sum_over_data(
                lambda p, u, y, b=block: self.flatten(self._product(p, u, y, b), batch_dims=1)
            )
            columns.append(out.T)
        return self._torch.cat(columns, dim=1)

    # --- redundancy ---------------------------------------------------------------------------------

    def redundant_parameters(self, *, seed: int = 0) -> list[tuple[str, str]]:
        """Pairs of same-shaped parameters that enter the outputs only through their sum, in
        every entry (``bias_ih`` and ``bias_hh`` of an ``nn.RNN`` or ``nn.LSTM``) or in some
        (those of an ``nn.GRU``: its reset and update gates, not its new gate).

        Each such entry ``j`` makes ``(e_j, −e_j)`` an exact null direction of the Hessian and the
        GGN. An entry is flagged when the gradients of two random projections ``wᵀ y`` of the first
        batch's outputs with respect to ``a_j`` and ``b_j`` agree to ``100 ε`` and are not both 0
        (one vector-Jacobian product each).

        Parameters
        ----------
        seed : int, default 0
            Seed of the random projections ``w``.

        Returns
        -------
        list of tuple of str
            The pairs ``(a, b)`` of parameter names (``a`` before ``b`` in order) with at least one
            redundant entry.
        """
        return [(a, b) for a, b, _ in self._redundant_entries(seed)]

    def _redundant_entries(self, seed: int) -> list[tuple[str, str, np.ndarray]]:
        """``(a, b, mask)`` per pair of :meth:`redundant_parameters`, ``mask`` the flat boolean
        array of the entries of ``a`` (and the same of ``b``) that enter only through the sum."""
        func, torch = self._torch.func, self._torch
        params = self.parameters()
        inputs, _ = next(iter(self.batches()))
        gen = torch.Generator(device="cpu").manual_seed(seed)
        eps = torch.finfo(self.dtype).eps
        with self._evaluation():
            out, pullback = func.vjp(lambda p: self._outputs(p, inputs), params)
            grads = [
                pullback(torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device))[0]
                for _ in range(2)
            ]
        found = []
        names = self.parameter_names
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if params[a].shape != params[b].shape:
                    continue
                ga = torch.stack([g[a].reshape(-1) for g in grads])
                gb = torch.stack([g[b].reshape(-1) for g in grads])
                scale = torch.maximum(ga.abs(), gb.abs()).amax(0)
                mask = ((ga - gb).abs() <= 100 * eps * scale).all(0) & (scale > 0)
                if bool(mask.any()):
                    found.append((a, b, mask.cpu().numpy()))
        if found:
            log.info(
                "redundant parameter pairs (exact null directions): %s",
                [(a, b, int(mask.sum())) for a, b, mask in found],
            )
        return found

    def null_directions(self, *, seed: int = 0) -> np.ndarray:
        """Orthonormal basis of the exact null directions of the redundant parameter pairs.

        For every redundant entry ``j`` of a pair ``(a, b)`` found by
        :meth:`lyapkit.CurvatureOperator.redundant_parameters`, one column: ``1/√2`` at that entry
        of ``a`` and ``−1/√2`` at the same entry of ``b``.

        Parameters
        ----------
        seed : int, default 0
            Passed to :meth:`lyapkit.CurvatureOperator.redundant_parameters`.

        Returns
        -------
        numpy.ndarray
            ``(P, r)`` float64 with orthonormal columns (``r = 0`` without redundant pairs).
        """
        offsets = dict(zip(self.parameter_names, np.cumsum([0, *self._sizes[:-1]]), strict=True))
        columns = []
        for a, b, mask in self._redundant_entries(seed):
            for i in np.flatnonzero(mask):
                col = np.zeros(self.num_params)
                col[offsets[a] + i], col[offsets[b] + i] = 1 / math.sqrt(2), -1 / math.sqrt(2)
                columns.append(col)
        return np.stack(columns, 1) if columns else np.zeros((self.num_params, 0))

    # --- decomposition over unrolled time (lyapkit.unrolled) -------------------------------------

    def layer_contributions(self, vectors: Any, *, bins: int | None = None) -> LayerContributions:
        """Contribution of each unrolled layer to the curvature ``vᵀCv`` along each vector.

        ``c_s = vᵀ (Σ_t C_{st}) v`` with ``C_{st}`` the blocks of the curvature of the model with its
        parameters untied into one copy per bin of unrolled steps and one for the readout (the
        parameters of a learned initial state ``x_0`` count in the first bin);
        ``Σ_s c_s + c_readout = vᵀCv``. For the GGN, ``c_s = (J_s v)ᵀ H_ℓ (J v)``. Needs a recurrent
        model (:class:`lyapkit.RecurrentNetwork`: ``initial_state``, ``step``, ``output``; a
        PyTorch RNN through :func:`lyapkit.adapt`) and inputs ``(batch, T, input)``; a TypeError
        names what the model lacks.

        Parameters
        ----------
        vectors : array (P,) or (P, k)
            Directions, e.g. the eigenvectors of :meth:`lyapkit.LinearOperator.eigenpairs`.
        bins : int, optional
            Number of contiguous bins of unrolled steps (default: one per step).

        Returns
        -------
        LayerContributions
            ``c_s`` per direction and bin, the readout's contribution, and the bin edges.

        Raises
        ------
        TypeError
            The model is not a recurrent network.
        ValueError
            ``vectors`` without ``P`` rows; inputs not ``(batch, T, input)``; batches of different
            ``T``; ``bins`` not an integer in ``[1, T]``.

        References
        ----------
        .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
           networks", arXiv:2307.14823, 2023 (eqs. 9–10).
        """
        return unrolled.layer_contributions(self, vectors, bins=bins)

    def block_matrix(self, vector: Any, *, bins: int | None = None) -> np.ndarray:
        """The time×time matrix ``M_{st} = vᵀ C_{st} v`` of the untied curvature along ``v``.

        Layers are the bins of unrolled steps and, last, the readout; ``M`` is symmetric, its rows
        sum to :meth:`lyapkit.CurvatureOperator.layer_contributions` and all of it to ``vᵀCv``.

        Parameters
        ----------
        vector : array (P,)
            The direction ``v`` (only the first column is used of a ``(P, k)`` array).
        bins : int, optional
            Number of contiguous bins of unrolled steps (default: one per step).

        Returns
        -------
        numpy.ndarray
            ``(L + 1, L + 1)`` float64 with ``L`` bins; the last row and column are the readout.

        Raises
        ------
        TypeError
            The model is not a recurrent network.
        ValueError
            ``vector`` without ``P`` rows; inputs not ``(batch, T, input)``; batches of different
            ``T``; ``bins`` not an integer in ``[1, T]``.
        """
        return unrolled.block_matrix(self, vector, bins=bins)

    def loss_time_contributions(self, vectors: Any) -> np.ndarray:
        """Contribution ``vᵀ C^{(τ)} v`` of the loss terms at each time ``τ`` of a sequence loss.

        ``C = Σ_τ C^{(τ)}`` where ``C^{(τ)}`` is the curvature of the loss terms at time ``τ``
        (axis 1 of the per-term losses, i.e. of outputs ``(batch, T, …)``).

        Parameters
        ----------
        vectors : array (P,) or (P, k)
            Directions ``v``.

        Returns
        -------
        numpy.ndarray
            ``(k, T)`` float64; each row sums to ``vᵀCv``.

        Raises
        ------
        ValueError
            ``vectors`` without ``P`` rows, or per-term losses with fewer than two axes (not a
            sequence loss).
        """
        return unrolled.loss_time_contributions(self, vectors)
