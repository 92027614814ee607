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
import functools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lyapkit._array import import_optional
from lyapkit._checks import integer
from lyapkit.losses import LossTerms, loss_terms_fn
from lyapkit.recurrent import check_recurrent, reference_path

log = logging.getLogger(__name__)

KINDS = ("ggn", "hessian")
#: Largest number of rows and columns :meth:`lyapkit.CurvatureOperator.dense` builds unless told otherwise.
MAX_DENSE = 4096


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


class CurvatureOperator:
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
    lyapkit.map_ggn : The GGN of a map's readouts without autodiff.
    lyapkit.sgd_effective_rates : Effective learning rates of the eigenvalues.
    lyapkit.preconditioned_sharpness : Adam's preconditioned sharpness from ``op.matvec``.

    Notes
    -----
    ``op @ V`` multiplies torch tensors ``(P,)`` or ``(P, k)`` (columns batched with
    ``torch.func.vmap``); :meth:`lyapkit.CurvatureOperator.as_linear_operator` wraps it for ``scipy.sparse.linalg`` in float64.

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
        self.model, self.data, self.kind = model, data, kind
        self.loss_terms = loss_terms_fn(loss)
        self.parameter_names = names
        self.parameter_shapes = [tuple(named[n].shape) for n in names]
        self._sizes = [named[n].numel() for n in names]
        self.num_params = sum(self._sizes)
        first = named[names[0]]
        self.dtype, self.device = first.dtype, first.device
        self._num_terms: int | None = None

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """The operator's shape ``(P, P)``, with ``P`` the number of selected parameters."""
        return (self.num_params, self.num_params)

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

    def unflatten(self, flat: Any) -> dict[str, Any]:
        """Split ``(..., P)`` into a dict of ``(..., *shape)`` tensors, one per parameter.

        Parameters
        ----------
        flat : torch.Tensor
            ``(..., P)`` vectors on the flattened parameters.

        Returns
        -------
        dict of str to torch.Tensor
            ``(..., *shape)`` per selected parameter, in order.
        """
        parts = flat.split(self._sizes, dim=-1)
        lead = tuple(flat.shape[:-1])
        return {
            n: part.reshape(lead + shape)
            for n, part, shape in zip(
                self.parameter_names, parts, self.parameter_shapes, strict=True
            )
        }

    def flatten(self, tensors: dict[str, Any], batch_dims: int = 0) -> Any:
        """Concatenate a dict of ``(..., *shape)`` tensors into ``(..., P)``.

        The inverse of :meth:`lyapkit.CurvatureOperator.unflatten`.

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

    def matmat(self, V: Any) -> Any:
        """``C V`` for a torch tensor ``V`` of shape ``(P, k)`` (``chunk`` columns at a time).

        Parameters
        ----------
        V : torch.Tensor or array_like
            ``(P, k)`` (or ``(P,)``, taken as one column); converted to the model's dtype and
            device.

        Returns
        -------
        torch.Tensor
            ``(P, k)`` products, in the model's dtype and on its device.

        Raises
        ------
        ValueError
            ``V`` does not have ``P`` rows.
        """
        torch = self._torch
        V = self._check_vectors(V)
        columns = []
        for start in range(0, V.shape[1], self.chunk):
            block = self.unflatten(V[:, start : start + self.chunk].T.contiguous())
            out = self._sum_over_data(
                lambda p, u, y, b=block: self.flatten(self._product(p, u, y, b), batch_dims=1)
            )
            columns.append(out.T)
        return torch.cat(columns, dim=1)

    def matvec(self, v: Any) -> Any:
        """``C v`` for a torch tensor ``v`` of shape ``(P,)``.

        Parameters
        ----------
        v : torch.Tensor or array_like
            ``(P,)``.

        Returns
        -------
        torch.Tensor
            ``(P,)`` product, in the model's dtype and on its device.

        Raises
        ------
        ValueError
            ``v`` does not have ``P`` entries.
        """
        return self.matmat(v.reshape(-1, 1))[:, 0]

    def __matmul__(self, V: Any) -> Any:
        return self.matvec(V) if V.ndim == 1 else self.matmat(V)

    def _check_vectors(self, V: Any) -> Any:
        torch = self._torch
        V = torch.as_tensor(V, dtype=self.dtype, device=self.device)
        if V.ndim == 1:
            V = V[:, None]
        if V.ndim != 2 or V.shape[0] != self.num_params:
            raise ValueError(
                f"vectors must have shape ({self.num_params},) or ({self.num_params}, k), "
                f"got {tuple(V.shape)}"
            )
        return V

    def as_linear_operator(self) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` in float64 (products in the model's dtype).

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            ``(P, P)``, symmetric (``rmatvec`` is ``matvec``), taking and returning float64 numpy
            arrays.
        """
        from scipy.sparse.linalg import LinearOperator

        torch = self._torch

        def matmat(X: np.ndarray) -> np.ndarray:
            X = torch.as_tensor(np.asarray(X, dtype=np.float64).reshape(self.num_params, -1))
            out = self.matmat(X.to(self.dtype))
            return out.to("cpu", torch.float64).numpy()

        return LinearOperator(
            self.shape,
            matvec=lambda x: matmat(x)[:, 0],
            matmat=matmat,
            rmatvec=lambda x: matmat(x)[:, 0],
            dtype=np.float64,
        )

    def dense(self, max_size: int = MAX_DENSE) -> np.ndarray:
        """The whole matrix ``(P, P)`` in float64 (``P ≤ max_size``).

        Built from the products with the ``P`` unit vectors and symmetrised, ``(C + Cᵀ)/2``.

        Parameters
        ----------
        max_size : int, default MAX_DENSE (4096)
            Largest ``P`` built.

        Returns
        -------
        numpy.ndarray
            ``(P, P)`` float64.

        Raises
        ------
        ValueError
            ``P > max_size``.
        """
        if self.num_params > max_size:
            raise ValueError(
                f"the dense matrix would be {self.num_params}×{self.num_params}; raise max_size "
                f"(now {max_size}) to build it anyway, or use matvec / eigenpairs"
            )
        eye = self._torch.eye(self.num_params, dtype=self.dtype, device=self.device)
        out = self.matmat(eye).to("cpu", self._torch.float64).numpy()
        return (out + out.T) / 2

    # --- spectra ------------------------------------------------------------------------------------

    def eigenpairs(
        self,
        k: int = 1,
        *,
        which: Literal["LA", "SA", "LM"] = "LA",
        method: Literal["lobpcg", "lanczos"] | None = None,
        tol: float | None = None,
        maxiter: int = 200,
        seed: int = 0,
    ) -> Eigenpairs:
        """Extreme eigenpairs: largest algebraic ("LA", the sharpness), smallest algebraic ("SA") or
        largest magnitude ("LM").

        ``method="lobpcg"`` (default for "LA" and "SA"; Knyazev 2001, ``scipy.sparse.linalg.lobpcg``)
        iterates a block of ``k + max(4, k // 2)`` vectors, so each iteration is one batched
        product (several times cheaper per vector than single products for recurrent models);
        ``"lanczos"`` (default for "LM") is implicitly restarted Lanczos (ARPACK, ``eigsh``), one
        product at a time. Convergence: residuals ``‖Cv − λv‖ ≤ tol · max|λ|``; a warning is
        logged when ``maxiter`` iterations did not reach it. The default ``tol`` is 1e-6 in
        float64 and 1e-4 in float32, whose rounding keeps residuals from going much lower. Small
        operators (``P ≤ 3k + 8``) are decomposed densely.

        Parameters
        ----------
        k : int, default 1
            Number of eigenpairs, ``1 ≤ k ≤ P``.
        which : {"LA", "SA", "LM"}, default "LA"
            Largest algebraic, smallest algebraic or largest magnitude.
        method : {"lobpcg", "lanczos"}, optional
            Default: ``"lobpcg"`` for "LA" and "SA", ``"lanczos"`` for "LM" (LOBPCG cannot do
            "LM").
        tol : float, optional
            Relative residual tolerance (default 1e-6 in float64, 1e-4 in float32).
        maxiter : int, default 200
            Iterations of LOBPCG (``maxiter · k`` Arnoldi updates for Lanczos).
        seed : int, default 0
            Seed of the random start vectors.

        Returns
        -------
        Eigenpairs
            ``k`` eigenvalues ordered by ``which`` and their unit eigenvectors ``(P, k)``.

        Raises
        ------
        ValueError
            ``k`` not an integer in ``[1, P]``; ``which`` or ``method`` unknown, or
            ``method="lobpcg"`` with ``which="LM"``.

        References
        ----------
        .. [1] A. V. Knyazev, "Toward the optimal preconditioned eigensolver: Locally optimal block
           preconditioned conjugate gradient method", SIAM Journal on Scientific Computing 23(2),
           517–541, 2001.
        .. [2] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide: Solution of
           Large-Scale Eigenvalue Problems with Implicitly Restarted Arnoldi Methods", SIAM, 1998.
        """
        from scipy.sparse.linalg import eigsh

        k = integer(k, "k", 1, self.num_params)
        if which not in ("LA", "SA", "LM"):
            raise ValueError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")
        method = method or ("lanczos" if which == "LM" else "lobpcg")
        if tol is None:
            tol = 1e-6 if self.dtype == self._torch.float64 else 1e-4
        if method not in ("lobpcg", "lanczos") or (method, which) == ("lobpcg", "LM"):
            raise ValueError(
                f"method must be 'lobpcg' (which='LA' or 'SA') or 'lanczos', got {method!r} "
                f"with which={which!r}"
            )
        rng = np.random.default_rng(seed)
        if self.num_params <= 3 * k + 8:
            values, vectors = np.linalg.eigh(self.dense())
        elif method == "lanczos":
            A, v0 = self.as_linear_operator(), rng.standard_normal(self.num_params)
            values, vectors = eigsh(A, k=k, which=which, tol=tol, v0=v0, maxiter=maxiter * k)
        else:
            values, vectors = self._lobpcg(k, which == "LA", tol, maxiter, rng)
        key = {"LA": -values, "SA": values, "LM": -np.abs(values)}[which]
        order = np.argsort(key, kind="stable")[:k]
        return Eigenpairs(
            eigenvalues=values[order],
            eigenvectors=vectors[:, order],
            parameter_names=list(self.parameter_names),
            parameter_shapes=list(self.parameter_shapes),
            kind=self.kind,
        )

    def _lobpcg(
        self, k: int, largest: bool, tol: float, maxiter: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """LOBPCG on a block of ``k + max(4, k // 2)`` vectors, restarted every 10 iterations until
        the residuals of the wanted ``k`` pairs (not the guard vectors) are below ``tol · scale``."""
        import warnings

        from scipy.sparse.linalg import lobpcg

        A = self.as_linear_operator()
        X = rng.standard_normal((self.num_params, k + max(4, k // 2)))
        # the scale of the spectrum, for a relative tolerance: ‖CX‖/‖X‖ ≤ max|λ|
        scale = np.max(np.linalg.norm(A.matmat(X), axis=0) / np.linalg.norm(X, axis=0))
        rounds = max(1, -(-maxiter // 10))
        for _ in range(rounds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # scipy warns about the guard vectors
                values, X = lobpcg(A, X, largest=largest, tol=tol * scale, maxiter=10)
            wanted = np.argsort(-values if largest else values, kind="stable")[:k]
            V = X[:, wanted]
            residual = np.linalg.norm(A.matmat(V) - V * values[wanted], axis=0).max()
            if residual <= tol * scale:
                return values, X
        log.warning(
            "lobpcg stopped at residual %.3g (tolerance %.3g) after %d iterations",
            residual,
            tol * scale,
            10 * rounds,
        )
        return values, X

    def spectral_density(
        self, num_probes: int = 8, lanczos_steps: int = 64, *, seed: int = 0
    ) -> SpectralDensity:
        """Spectral density by stochastic Lanczos quadrature; see :func:`lyapkit.lanczos_quadrature`.

        Parameters
        ----------
        num_probes : int, default 8
            Number of random probe vectors.
        lanczos_steps : int, default 64
            Lanczos steps per probe (at most ``P``), i.e. quadrature nodes.
        seed : int, default 0
            Seed of the probes.

        Returns
        -------
        SpectralDensity
            Nodes and weights of the quadrature, with ``kind`` this operator's kind.
        """
        return lanczos_quadrature(
            self.as_linear_operator(), num_probes, lanczos_steps, seed=seed, kind=self.kind
        )

    def trace(self, num_matvecs: int = 30, *, seed: int = 0) -> float:
        """``tr C`` by Hutch++; see :func:`lyapkit.hutchpp_trace`.

        Parameters
        ----------
        num_matvecs : int, default 30
            Budget of products (``≥ 3``); exact when ``num_matvecs // 3 ≥ P``.
        seed : int, default 0
            Seed of the random sketches.

        Returns
        -------
        float
            The trace estimate.
        """
        return hutchpp_trace(self.as_linear_operator(), num_matvecs, seed=seed)

    # --- redundancy ---------------------------------------------------------------------------------

    def redundant_parameters(self, *, seed: int = 0) -> list[tuple[str, str]]:
        """Pairs of same-shaped parameters that enter the outputs only through their sum.

        Such pairs (``bias_ih`` and ``bias_hh`` of a PyTorch RNN) make ``(δ, −δ)`` an exact null
        direction of the Hessian and the GGN for every ``δ``. A pair is flagged when moving one
        along a random ``δ`` and the other along ``−δ`` changes the outputs of the first batch by
        less than ``100 ε`` of moving the first alone (one ``jvp`` each).

        Parameters
        ----------
        seed : int, default 0
            Seed of the random directions ``δ``.

        Returns
        -------
        list of tuple of str
            The redundant pairs ``(a, b)`` of parameter names (``a`` before ``b`` in order).
        """
        func, torch = self._torch.func, self._torch
        params = self.parameters()
        inputs, _ = next(iter(self.batches()))
        gen = torch.Generator(device="cpu").manual_seed(seed)
        eps = torch.finfo(self.dtype).eps
        found = []

        def change(direction: dict) -> float:
            full = {n: direction.get(n, torch.zeros_like(t)) for n, t in params.items()}
            return float(func.jvp(lambda p: self._outputs(p, inputs), (params,), (full,))[1].norm())

        with self._evaluation():
            names = self.parameter_names
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    if params[a].shape != params[b].shape:
                        continue
                    d = torch.randn(params[a].shape, generator=gen, dtype=self.dtype)
                    d = d.to(self.device)
                    alone = change({a: d})
                    if alone > 0 and change({a: d, b: -d}) <= 100 * eps * alone:
                        found.append((a, b))
        if found:
            log.info("redundant parameter pairs (exact null directions): %s", found)
        return found

    def null_directions(self, *, seed: int = 0) -> np.ndarray:
        """Orthonormal basis of the exact null directions of the redundant parameter pairs.

        For every pair ``(a, b)`` found by :meth:`lyapkit.CurvatureOperator.redundant_parameters`, one column per entry of
        ``a``: ``1/√2`` at that entry of ``a`` and ``−1/√2`` at the same entry of ``b``.

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
        sizes = dict(zip(self.parameter_names, self._sizes, strict=True))
        columns = []
        for a, b in self.redundant_parameters(seed=seed):
            for i in range(sizes[a]):
                col = np.zeros(self.num_params)
                col[offsets[a] + i], col[offsets[b] + i] = 1 / math.sqrt(2), -1 / math.sqrt(2)
                columns.append(col)
        return np.stack(columns, 1) if columns else np.zeros((self.num_params, 0))

    # --- decomposition over unrolled time -------------------------------------------------------------

    def layer_contributions(self, vectors: Any, *, bins: int | None = None) -> LayerContributions:
        """Contribution of each unrolled layer to the curvature ``vᵀCv`` along each vector.

        ``c_s = vᵀ (Σ_t C_{st}) v`` with ``C_{st}`` the blocks of the curvature of the model with its
        parameters untied into one copy per bin of unrolled steps and one for the readout;
        ``Σ_s c_s + c_readout = vᵀCv``. For the GGN, ``c_s = (J_s v)ᵀ H_ℓ (J v)``. Needs a recurrent
        model (:class:`lyapkit.RecurrentNetwork`: ``initial_state``, ``step``, ``output``; a
        PyTorch RNN through :func:`lyapkit.adapt`) and inputs ``(batch, T, input)``; a TypeError
        names what the model lacks.

        Parameters
        ----------
        vectors : array (P,) or (P, k)
            Directions, e.g. the eigenvectors of :meth:`lyapkit.CurvatureOperator.eigenpairs`.
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
        torch, func = self._torch, self._torch.func
        V = self._check_vectors(vectors)
        unrolled = _Unrolled(self, bins)

        def per_batch(params, inputs, targets):
            loss_sum = self._loss_sum(targets)
            zero = unrolled.zero_copies(params, inputs)
            layers = unrolled.layer_of_step(inputs.shape[1])

            def outputs(p, copies):
                return unrolled.outputs(p, copies, inputs, layers)

            def contributions(v):
                if self.kind == "hessian":
                    grad_copies = lambda p: func.grad(  # noqa: E731
                        lambda c: loss_sum(outputs(p, c))
                    )(zero)
                    hv = func.jvp(grad_copies, (params,), (v,))[1]
                else:
                    out, Jv = func.jvp(lambda p: outputs(p, zero), (params,), (v,))
                    HJv = func.jvp(func.grad(loss_sum), (out,), (Jv,))[1]
                    hv = func.grad(lambda c: (outputs(params, c) * HJv).sum())(zero)
                return sum((hv[n] * v[n]).flatten(1).sum(1) for n in self.parameter_names)

            return func.vmap(contributions)(self.unflatten(V.T.contiguous()))

        values = self._sum_over_data(per_batch).to("cpu", torch.float64).numpy()
        return LayerContributions(
            recurrent=values[:, :-1],
            readout=values[:, -1],
            bin_edges=unrolled.edges,
            kind=self.kind,
        )

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
        torch, func = self._torch, self._torch.func
        v = self.unflatten(self._check_vectors(vector)[:, 0])
        unrolled = _Unrolled(self, bins)

        def per_batch(params, inputs, targets):
            loss_sum = self._loss_sum(targets)
            zero = unrolled.zero_copies(params, inputs)
            layers = unrolled.layer_of_step(inputs.shape[1])
            L = len(unrolled.edges)  # bins + readout
            # direction m moves only copy m, along v
            one_hot = torch.eye(L, dtype=self.dtype, device=self.device)
            directions = {
                n: one_hot.reshape(L, L, *([1] * v[n].ndim)) * v[n] for n in self.parameter_names
            }

            def outputs(c):
                return unrolled.outputs(params, c, inputs, layers)

            if self.kind == "hessian":
                grad_copies = func.grad(lambda c: loss_sum(outputs(c)))
                H = func.vmap(lambda d: func.jvp(grad_copies, (zero,), (d,))[1])(directions)
                return sum(
                    (H[n] * v[n]).flatten(2).sum(2) for n in self.parameter_names
                ).T  # [m, s] -> [s, m]
            out = outputs(zero)
            Jv = func.vmap(lambda d: func.jvp(outputs, (zero,), (d,))[1])(directions)
            HJv = func.vmap(lambda j: func.jvp(func.grad(loss_sum), (out,), (j,))[1])(Jv)
            return torch.einsum("s...,m...->sm", Jv, HJv)

        M = self._sum_over_data(per_batch).to("cpu", torch.float64).numpy()
        return (M + M.T) / 2

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
        torch, func = self._torch, self._torch.func
        V = self._check_vectors(vectors)

        def per_batch(params, inputs, targets):
            shape = self.loss_terms(self._outputs(params, inputs), targets).shape
            if len(shape) < 2:
                raise ValueError(
                    "loss_time_contributions needs a sequence loss: per-term losses of shape "
                    f"(batch, T, ...), got {tuple(shape)}"
                )

            def per_time(p):
                return _sum_but_time(self.loss_terms(self._outputs(p, inputs), targets))

            def contributions(v):
                if self.kind == "hessian":
                    first = lambda p: func.jvp(per_time, (p,), (v,))[1]  # noqa: E731
                    return func.jvp(first, (params,), (v,))[1]
                out, Jv = func.jvp(lambda p: self._outputs(p, inputs), (params,), (v,))
                HJv = func.jvp(func.grad(self._loss_sum(targets)), (out,), (Jv,))[1]
                return _sum_but_time(Jv * HJv)

            return func.vmap(contributions)(self.unflatten(V.T.contiguous()))

        return self._sum_over_data(per_batch).to("cpu", torch.float64).numpy()


def _sum_but_time(x: Any) -> Any:
    """Sum ``(batch, T, …)`` over all axes but time (axis 1)."""
    return x.reshape(x.shape[0], x.shape[1], -1).sum((0, 2))


class _Unrolled:
    """A recurrent model evaluated with its selected parameters untied into per-layer copies.

    Layer ``l < L`` holds the steps ``edges[l] ≤ s < edges[l+1]`` (0-based), the last layer is the
    readout. Copies are additive offsets ``δ_l`` (zero at the evaluation point) to the parameters.
    """

    def __init__(self, op: CurvatureOperator, bins: int | None):
        model = op.model
        check_recurrent(model, "the per-time decomposition")
        inputs, _ = next(iter(op.batches()))
        if inputs.ndim != 3:
            raise ValueError(
                f"inputs must have shape (batch, T, input) for the per-time decomposition, "
                f"got {tuple(inputs.shape)}"
            )
        T = inputs.shape[1]
        bins = (
            T
            if bins is None
            else integer(bins, "bins", 1, T, maximum_is=f"{T} (the sequence length)")
        )
        self.op, self.T, self.bins = op, T, bins
        self.edges = np.linspace(0, T, self.bins + 1).round().astype(np.int64)
        method = _method_module()
        self._step, self._output = method(model, "step"), method(model, "output")

    def layer_of_step(self, T: int) -> np.ndarray:
        if T != self.T:
            raise ValueError(
                f"every batch must have the same sequence length for the per-time decomposition; "
                f"got {T} and {self.T}"
            )
        return np.searchsorted(self.edges, np.arange(T), side="right") - 1

    def zero_copies(self, params: dict, inputs: Any) -> dict:
        L = self.bins + 1
        return {n: p.new_zeros((L, *p.shape)) for n, p in params.items()}

    def outputs(self, params: dict, copies: dict, inputs: Any, layers: np.ndarray) -> Any:
        torch, call = self.op._torch, self.op._torch.func.functional_call

        def at(layer: int) -> dict:
            return {f"model.{n}": p + copies[n][layer] for n, p in params.items()}

        model = self.op.model
        state, states = model.initial_state(inputs), []
        for t in range(inputs.shape[1]):
            state = call(self._step, at(int(layers[t])), (state, inputs[:, t]))
            states.append(state)
        return call(self._output, at(self.bins), (torch.stack(states, 1), inputs))


@functools.cache
def _method_module() -> type:
    torch = import_optional("torch", "torch")

    class Method(torch.nn.Module):
        """``model.<method>`` as a module, so ``torch.func.functional_call`` can reparametrise it."""

        def __init__(self, model: Any, method: str):
            super().__init__()
            self.model, self.method = model, method

        def forward(self, *args: Any) -> Any:
            return getattr(self.model, self.method)(*args)

    return Method


# --- results --------------------------------------------------------------------------------------


def inverse_participation_ratio(vectors: np.ndarray) -> np.ndarray:
    """Inverse participation ratio of each column: 1 on one coordinate, ``1/P`` spread over ``P``.

    ``IPR(v) = Σ_i v_i⁴ / (Σ_i v_i²)²``; ``1/IPR`` counts the coordinates a vector occupies.

    Parameters
    ----------
    vectors : (P,) or (P, k) array_like
        One vector, or ``k`` vectors as columns (need not be normalised; a zero column gives NaN).

    Returns
    -------
    numpy.ndarray
        ``(k,)`` float64 (``(1,)`` for one vector).

    See Also
    --------
    lyapkit.Eigenpairs : Its ``ipr`` property applies this to the eigenvectors.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> lk.inverse_participation_ratio(np.array([0.0, 3.0, 0.0]))
    array([1.])
    >>> lk.inverse_participation_ratio(np.ones((4, 2)))
    array([0.25, 0.25])
    """
    V = np.asarray(vectors, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    sq = V * V
    return (sq * sq).sum(0) / sq.sum(0) ** 2


@dataclass(frozen=True, repr=False)
class Eigenpairs:
    """Eigenpairs of a curvature operator.

    Made by :meth:`lyapkit.CurvatureOperator.eigenpairs`: ``C v_i = λ_i v_i`` with unit ``v_i``.

    Parameters
    ----------
    eigenvalues : (k,) float64
        Ordered as requested (descending for "LA").
    eigenvectors : (P, k) float64
        Unit eigenvectors on the flattened parameters.
    parameter_names : list of str
        The parameters the vectors live on, in order.
    parameter_shapes : list of tuple of int
        Their shapes.
    kind : str
        "ggn" or "hessian".

    See Also
    --------
    lyapkit.CurvatureOperator.eigenpairs : Computes them.
    lyapkit.CurvatureOperator.layer_contributions : Splits the eigenvalues over unrolled time.
    lyapkit.inverse_participation_ratio : How localised the eigenvectors are.

    Examples
    --------
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> data = (torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64))
    >>> pairs = lk.CurvatureOperator(model, data, "mse").eigenpairs(k=2)
    >>> pairs
    Eigenpairs(kind='ggn', eigenvalues=[2.9792 2.6182])
    >>> pairs.eigenvectors.shape, pairs.ipr.round(3)
    ((4, 2), array([0.381, 0.418]))
    >>> pairs.parameter_mass.round(3)  # share on (weight, bias)
    array([[0.717, 0.283],
           [0.924, 0.076]])
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    parameter_names: list[str]
    parameter_shapes: list[tuple[int, ...]]
    kind: str

    @property
    def ipr(self) -> np.ndarray:
        """Inverse participation ratio of each eigenvector (:func:`lyapkit.inverse_participation_ratio`)."""
        return inverse_participation_ratio(self.eigenvectors)

    @property
    def parameter_mass(self) -> np.ndarray:
        """``(k, n_parameters)``: the share of each eigenvector's squared norm on each parameter."""
        sizes = [int(np.prod(s)) for s in self.parameter_shapes]
        sq = self.eigenvectors**2
        return np.stack([part.sum(0) for part in np.split(sq, np.cumsum(sizes)[:-1])], 1)

    def to_xarray(self) -> Any:
        """Dataset with dims ``("eigenvalue", "parameter")``.

        Returns
        -------
        xarray.Dataset
            ``eigenvalues`` and ``ipr`` over ``eigenvalue``, ``parameter_mass`` over both dims;
            ``kind`` as an attribute.
        """
        import xarray as xr

        return xr.Dataset(
            {
                "eigenvalues": (
                    "eigenvalue",
                    self.eigenvalues,
                    {"long_name": f"{self.kind} eigenvalue", "units": "loss"},
                ),
                "ipr": (
                    "eigenvalue",
                    self.ipr,
                    {"long_name": "inverse participation ratio", "units": "1"},
                ),
                "parameter_mass": (
                    ("eigenvalue", "parameter"),
                    self.parameter_mass,
                    {"long_name": "share of the eigenvector's squared norm", "units": "1"},
                ),
            },
            coords={
                "eigenvalue": np.arange(len(self.eigenvalues)),
                "parameter": self.parameter_names,
            },
            attrs={"kind": self.kind},
        )

    def __repr__(self) -> str:
        return f"Eigenpairs(kind={self.kind!r}, eigenvalues={np.array2string(self.eigenvalues, precision=4)})"


@dataclass(frozen=True, repr=False)
class LayerContributions:
    """Contributions of unrolled layers to the curvature along given directions.

    Made by :meth:`lyapkit.CurvatureOperator.layer_contributions`: ``c_s = vᵀ (Σ_t C_{st}) v``
    for the untied copies ``θ_s`` of the parameters, with ``Σ_s c_s + c_readout = vᵀCv``.

    Parameters
    ----------
    recurrent : (k, L) float64
        ``c_s`` for each bin ``s`` of unrolled steps.
    readout : (k,) float64
        Contribution of the readout's copy of the parameters.
    bin_edges : (L + 1,) int64
        Bin ``s`` holds the unrolled steps ``bin_edges[s] ≤ t < bin_edges[s+1]`` (0-based).
    kind : str
        "ggn" or "hessian".

    See Also
    --------
    lyapkit.CurvatureOperator.layer_contributions : Computes them.
    lyapkit.CurvatureOperator.block_matrix : The whole time×time matrix ``vᵀ C_{st} v``.
    lyapkit.temporal_effective_rates : The contributions as learning rates, with their decay.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023 (eqs. 9–10).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = lk.adapt(torch.nn.RNN(2, 3, batch_first=True), head=torch.nn.Linear(3, 1))
    >>> model = model.double()
    >>> inputs = torch.randn(4, 5, 2, dtype=torch.float64)
    >>> targets = torch.randn(4, 1, dtype=torch.float64)
    >>> op = lk.CurvatureOperator(model, (inputs, targets), "mse")
    >>> pairs = op.eigenpairs(k=1)
    >>> parts = op.layer_contributions(pairs.eigenvectors)
    >>> parts.recurrent.shape, parts.bin_edges.tolist(), parts.lag.tolist()
    ((1, 5), [0, 1, 2, 3, 4, 5], [5.0, 4.0, 3.0, 2.0, 1.0])
    >>> bool(np.allclose(parts.total, pairs.eigenvalues))
    True
    """

    recurrent: np.ndarray
    readout: np.ndarray
    bin_edges: np.ndarray
    kind: str

    @property
    def total(self) -> np.ndarray:
        """``(k,)`` ``vᵀCv`` along each direction: ``Σ_s c_s + c_readout`` (the eigenvalue, for eigenvectors)."""
        return self.recurrent.sum(1) + self.readout

    @property
    def lag(self) -> np.ndarray:
        """Lag ``T − t`` of each bin's centre from the last step (steps)."""
        T = self.bin_edges[-1]
        return T - (self.bin_edges[:-1] + self.bin_edges[1:] - 1) / 2

    def to_xarray(self) -> Any:
        """Dataset with dims ``("direction", "layer")``; ``layer`` is the bin centre (0-based step).

        Returns
        -------
        xarray.Dataset
            ``recurrent`` over both dims, ``readout`` and ``total`` over ``direction``; ``kind``
            as an attribute.
        """
        import xarray as xr

        centre = (self.bin_edges[:-1] + self.bin_edges[1:] - 1) / 2
        return xr.Dataset(
            {
                "recurrent": (
                    ("direction", "layer"),
                    self.recurrent,
                    {
                        "long_name": f"contribution of unrolled layer to vᵀ{self.kind}v",
                        "units": "loss",
                    },
                ),
                "readout": (
                    "direction",
                    self.readout,
                    {"long_name": "readout contribution", "units": "loss"},
                ),
                "total": (
                    "direction",
                    self.total,
                    {"long_name": f"vᵀ{self.kind}v", "units": "loss"},
                ),
            },
            coords={
                "direction": np.arange(self.recurrent.shape[0]),
                "layer": (
                    "layer",
                    centre,
                    {"long_name": "unrolled step (bin centre)", "units": "step"},
                ),
            },
            attrs={"kind": self.kind},
        )

    def plot(self, ax: Any = None) -> Any:
        """``|c_s|`` against the lag on a log scale, one line per direction.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current axes).

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        for i, row in enumerate(self.recurrent):
            ax.semilogy(self.lag, np.abs(row), label=f"direction {i}")
        ax.set_xlabel("lag T − t (steps)")
        ax.set_ylabel(f"|contribution to vᵀ{self.kind}v|")
        ax.legend()
        return ax


# --- stochastic estimators on any linear operator -------------------------------------------------------


def _rademacher(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def hutchpp_trace(operator: Any, num_matvecs: int = 30, *, seed: int = 0) -> float:
    """Hutch++ estimate of ``tr A`` from ``num_matvecs`` products (Meyer et al. 2021)::

        S, G ~ Rademacher (P, m/3);  Q = orth(A S);  G' = (I − QQᵀ) G
        tr A ≈ tr(Qᵀ A Q) + (3/m) tr(G'ᵀ A G')

    Exact when ``m/3 ≥ P``; unbiased otherwise, with error ``O(1/m)`` relative to ``‖A‖_*``.

    Parameters
    ----------
    operator : array_like or scipy.sparse.linalg.LinearOperator
        A square ``(P, P)`` operator: anything ``scipy.sparse.linalg.aslinearoperator`` accepts
        (an array, a sparse matrix, an object with ``shape`` and ``matvec``/``matmat``).
    num_matvecs : int, default 30
        Budget ``m ≥ 3`` of products; ``3 (m // 3)`` are used.
    seed : int, default 0
        Seed of the Rademacher sketches.

    Returns
    -------
    float
        The estimate of ``tr A``.

    Raises
    ------
    ValueError
        ``num_matvecs`` is not an integer ``≥ 3``.

    See Also
    --------
    lyapkit.CurvatureOperator.trace : The trace of a Hessian or GGN.
    lyapkit.lanczos_quadrature : The whole spectral density (its first moment is ``tr A / P``).

    References
    ----------
    .. [1] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
       estimation", Symposium on Simplicity in Algorithms (SOSA), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> lk.hutchpp_trace(np.diag(np.arange(1.0, 11.0)), num_matvecs=30)  # m/3 ≥ P: exact
    55.0
    >>> A = np.diag(1.0 / np.arange(1, 201) ** 2)
    >>> bool(abs(lk.hutchpp_trace(A, num_matvecs=30) - np.trace(A)) < 0.01 * np.trace(A))
    True
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(operator)
    num_matvecs = integer(num_matvecs, "num_matvecs", 3)
    P = A.shape[0]
    third = min(num_matvecs // 3, P)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(A.matmat(_rademacher(rng, (P, third))))
    G = _rademacher(rng, (P, num_matvecs // 3))
    G -= Q @ (Q.T @ G)
    low_rank = np.trace(Q.T @ A.matmat(Q))
    return float(low_rank + np.trace(G.T @ A.matmat(G)) / G.shape[1])


@dataclass(frozen=True, repr=False)
class SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017).

    For each unit probe ``q``, ``m`` Lanczos steps give the Gauss quadrature
    ``qᵀ f(A) q ≈ Σ_j w_j f(θ_j)`` (exact for polynomials of degree ``< 2m``); the density estimate is
    the probe average ``φ(x) = (1/n_v) Σ_q Σ_j w_{qj} δ(x − θ_{qj})``, which integrates to 1.

    Parameters
    ----------
    nodes, weights : (num_probes, m) float64
        Ritz values ``θ`` and weights ``w`` (each row of weights sums to 1; unused slots after an
        early Lanczos breakdown have weight 0).
    dim : int
        Dimension ``P`` of the operator.
    kind : str, default "operator"
        What the operator is ("ggn", "hessian", or "operator").

    See Also
    --------
    lyapkit.lanczos_quadrature : Computes it for any symmetric operator.
    lyapkit.CurvatureOperator.spectral_density : For a Hessian or GGN.

    References
    ----------
    .. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM Journal on Matrix Analysis and Applications 38(4), 1075–1099, 2017.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> sd = lk.lanczos_quadrature(np.diag([1.0, 2.0, 3.0, 4.0]), num_probes=3, lanczos_steps=4)
    >>> round(sd.moment(1), 3), round(sd.moment(2), 3)  # tr A / P, tr A² / P
    (2.5, 7.5)
    >>> sd.density(np.array([0.0, 2.0]), width=0.1).round(3)
    array([0.   , 0.997])
    >>> dict(sd.to_xarray().sizes)
    {'probe': 3, 'node': 4}
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    kind: str = "operator"

    def moment(self, order: int) -> float:
        """Estimate of ``tr(A^order) / P``: ``(1/n_v) Σ_q Σ_j w_{qj} θ_{qj}^order``.

        Parameters
        ----------
        order : int
            The power of ``A`` (the quadrature is exact for ``order < 2m``; the estimate then
            carries only the probes' variance).

        Returns
        -------
        float
            The moment estimate.
        """
        return float((self.weights * self.nodes**order).sum(1).mean())

    def density(self, grid: np.ndarray, width: float | None = None) -> np.ndarray:
        """The density smoothed by Gaussians of standard deviation ``width`` on ``grid``.

        ``φ_σ(x) = (1/n_v) Σ_q Σ_j w_{qj} exp(−(x − θ_{qj})²/2σ²) / (σ √(2π))``.

        Parameters
        ----------
        grid : (g,) array_like
            Points ``x`` at which to evaluate the density.
        width : float, optional
            ``σ`` (default: 1% of the range of the nodes, 1e-3 when they all coincide).

        Returns
        -------
        numpy.ndarray
            ``(g,)`` float64 density on ``grid``.
        """
        grid = np.asarray(grid, dtype=np.float64)
        used = self.weights > 0
        if width is None:
            span = np.ptp(self.nodes[used]) if used.any() else 1.0
            width = 0.01 * span if span > 0 else 1e-3
        z = (grid[:, None, None] - self.nodes[None]) / width
        kernel = np.exp(-0.5 * z * z) / (width * math.sqrt(2 * math.pi))
        return (kernel * self.weights[None]).sum(2).mean(1)

    def to_xarray(self) -> Any:
        """Dataset of nodes and weights with dims ``("probe", "node")``.

        Returns
        -------
        xarray.Dataset
            ``nodes`` and ``weights``; ``dim`` and ``kind`` as attributes.
        """
        import xarray as xr

        return xr.Dataset(
            {
                "nodes": (
                    ("probe", "node"),
                    self.nodes,
                    {"long_name": "Ritz value", "units": "loss"},
                ),
                "weights": (
                    ("probe", "node"),
                    self.weights,
                    {"long_name": "quadrature weight", "units": "1"},
                ),
            },
            attrs={"dim": self.dim, "kind": self.kind},
        )

    def plot(self, ax: Any = None, *, width: float | None = None, log: bool = True) -> Any:
        """The smoothed density on 1000 points over the nodes' range (log scale by default).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current axes).
        width : float, optional
            Smoothing width, as in :meth:`lyapkit.SpectralDensity.density`.
        log : bool, default True
            Logarithmic density axis.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        lo, hi = self.nodes.min(), self.nodes.max()
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        grid = np.linspace(lo - pad, hi + pad, 1000)
        (ax.semilogy if log else ax.plot)(grid, self.density(grid, width))
        ax.set_xlabel(f"{self.kind} eigenvalue")
        ax.set_ylabel("spectral density")
        return ax


def lanczos_quadrature(
    operator: Any,
    num_probes: int = 8,
    lanczos_steps: int = 64,
    *,
    seed: int = 0,
    kind: str = "operator",
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of a symmetric operator (Ubaru, Chen & Saad 2017).

    Each Rademacher probe ``q`` (normalised) starts ``m`` Lanczos steps with full
    re-orthogonalisation, ``A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ``; the eigen-decomposition
    ``T_m = Σ_j θ_j y_j y_jᵀ`` gives nodes ``θ_j`` and weights ``w_j = (e_1ᵀ y_j)²``. The probes run
    in lockstep, so each Lanczos step is one product with a block of vectors (``matmat``); a probe
    whose Krylov space is exhausted (``β_j ≈ 0``) stops early.

    Parameters
    ----------
    operator : array_like or scipy.sparse.linalg.LinearOperator
        A symmetric ``(P, P)`` operator: anything ``scipy.sparse.linalg.aslinearoperator``
        accepts (symmetry is assumed, not checked).
    num_probes : int, default 8
        Number of Rademacher probes ``n_v``.
    lanczos_steps : int, default 64
        Lanczos steps ``m`` per probe (capped at ``P``): nodes per probe.
    seed : int, default 0
        Seed of the probes.
    kind : str, default "operator"
        Label stored in the result ("ggn", "hessian", ...).

    Returns
    -------
    SpectralDensity
        ``(num_probes, m)`` nodes and weights.

    Raises
    ------
    ValueError
        ``num_probes`` or ``lanczos_steps`` not a positive integer.

    See Also
    --------
    lyapkit.CurvatureOperator.spectral_density : For a Hessian or GGN.
    lyapkit.hutchpp_trace : The trace alone, more accurately per product.

    References
    ----------
    .. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM Journal on Matrix Analysis and Applications 38(4), 1075–1099, 2017.
    .. [2] C. Lanczos, "An iteration method for the solution of the eigenvalue problem of linear
       differential and integral operators", Journal of Research of the National Bureau of
       Standards 45(4), 255–282, 1950.

    Examples
    --------
    With ``m ≥ P`` steps the nodes are the eigenvalues and a Rademacher probe weighs each by
    ``1/P``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> sd = lk.lanczos_quadrature(np.diag([1.0, 2.0, 3.0, 4.0]), num_probes=2, lanczos_steps=4)
    >>> sd.nodes.round(3)
    array([[1., 2., 3., 4.],
           [1., 2., 3., 4.]])
    >>> sd.weights.round(3)
    array([[0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25]])
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(operator)
    P = A.shape[0]
    for name, value in (("num_probes", num_probes), ("lanczos_steps", lanczos_steps)):
        integer(value, name, 1)
    m = min(int(lanczos_steps), P)
    rng = np.random.default_rng(seed)
    basis = np.zeros((num_probes, m, P))
    basis[:, 0] = _rademacher(rng, (num_probes, P)) / math.sqrt(P)
    alpha, beta = np.zeros((num_probes, m)), np.zeros((num_probes, m))
    steps = np.zeros(num_probes, dtype=np.int64)
    active = np.ones(num_probes, dtype=bool)
    for j in range(m):
        live = np.flatnonzero(active)
        q = basis[live, j]
        w = A.matmat(q.T).T
        alpha[live, j] = (w * q).sum(1)
        steps[live] = j + 1
        Q = basis[live, : j + 1]
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w -= np.einsum("ajp,aj->ap", Q, np.einsum("ajp,ap->aj", Q, w))
        if j == m - 1:
            break
        b = np.linalg.norm(w, axis=1)
        going = b > 1e-12 * np.maximum(1.0, np.abs(alpha[live, j]))
        beta[live[going], j] = b[going]
        basis[live[going], j + 1] = w[going] / b[going, None]
        active[live[~going]] = False
        if not active.any():
            break
    nodes, weights = np.zeros((num_probes, m)), np.zeros((num_probes, m))
    for p, s in enumerate(steps):
        T = np.diag(alpha[p, :s]) + np.diag(beta[p, : s - 1], 1) + np.diag(beta[p, : s - 1], -1)
        theta, Y = np.linalg.eigh(T)
        nodes[p, :s], weights[p, :s] = theta, Y[0] ** 2
    return SpectralDensity(nodes=nodes, weights=weights, dim=P, kind=kind)
