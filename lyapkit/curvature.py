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
from lyapkit.losses import LossTerms, loss_terms_fn
from lyapkit.recurrent import check_recurrent, reference_path

log = logging.getLogger(__name__)

KINDS = ("ggn", "hessian")
#: Largest number of rows and columns :meth:`CurvatureOperator.dense` builds unless told otherwise.
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
        decompositions (:meth:`layer_contributions`, :meth:`block_matrix`) need a
        :class:`lyapkit.RecurrentNetwork`.
    data : (inputs, targets) or iterable of them
        One batch, or a re-iterable collection of batches (a ``DataLoader`` or a list).
    loss : {"cross_entropy", "mse"} or callable
        The loss (see :mod:`lyapkit.losses`).
    kind : {"ggn", "hessian"}
        Which curvature matrix.
    parameters : sequence of str, optional
        Names (as in ``model.named_parameters()``) of the parameters the operator acts on; default:
        all parameters that require grad. The others are held fixed.
    chunk : int
        Columns multiplied together in one batched pass. GGN columns each hold their own tangents
        of the unrolled network's intermediate values (``O(batch · T · state)``), and Hessian
        columns their cotangents while they are pulled back, so memory grows with ``chunk`` while
        the time per column falls; lower it for long sequences.

    Notes
    -----
    ``op @ V`` multiplies torch tensors ``(P,)`` or ``(P, k)`` (columns batched with
    ``torch.func.vmap``); :meth:`as_linear_operator` wraps it for ``scipy.sparse.linalg`` in float64.
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
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        self.chunk = int(chunk)
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
        """``(P, P)`` with ``P`` the number of selected parameters."""
        return (self.num_params, self.num_params)

    def batches(self) -> Iterable[tuple[Any, Any]]:
        """The ``(inputs, targets)`` batches, moved to the model's device."""
        batches = [self.data] if _is_batch(self.data) else self.data
        for batch in batches:
            inputs, targets = _batch(batch)
            yield inputs.to(self.device), targets.to(self.device)

    def parameters(self) -> dict[str, Any]:
        """The selected parameters' current values (detached)."""
        named = dict(self.model.named_parameters())
        return {n: named[n].detach() for n in self.parameter_names}

    def unflatten(self, flat: Any) -> dict[str, Any]:
        """Split ``(..., P)`` into a dict of ``(..., *shape)`` tensors, one per parameter."""
        parts = flat.split(self._sizes, dim=-1)
        lead = tuple(flat.shape[:-1])
        return {
            n: part.reshape(lead + shape)
            for n, part, shape in zip(
                self.parameter_names, parts, self.parameter_shapes, strict=True
            )
        }

    def flatten(self, tensors: dict[str, Any], batch_dims: int = 0) -> Any:
        """Concatenate a dict of ``(..., *shape)`` tensors into ``(..., P)``."""
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
        """``N``: the number of loss terms in the data set (one forward pass, then cached)."""
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
        """``C V`` for a torch tensor ``V`` of shape ``(P, k)`` (``chunk`` columns at a time)."""
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
        """``C v`` for a torch tensor ``v`` of shape ``(P,)``."""
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
        """A ``scipy.sparse.linalg.LinearOperator`` in float64 (products in the model's dtype)."""
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
        """The whole matrix ``(P, P)`` in float64 (``P ≤ max_size``)."""
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
        float64 and 1e-4 in float32, whose rounding keeps residuals from going much lower. Small operators (``P ≤ 3k + 8``) are
        decomposed densely.
        """
        from scipy.sparse.linalg import eigsh

        if not isinstance(k, (int, np.integer)) or not 1 <= k <= self.num_params:
            raise ValueError(f"k must be an integer in [1, {self.num_params}], got {k!r}")
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
        """Spectral density by stochastic Lanczos quadrature; see :func:`lanczos_quadrature`."""
        return lanczos_quadrature(
            self.as_linear_operator(), num_probes, lanczos_steps, seed=seed, kind=self.kind
        )

    def trace(self, num_matvecs: int = 30, *, seed: int = 0) -> float:
        """``tr C`` by Hutch++; see :func:`hutchpp_trace`."""
        return hutchpp_trace(self.as_linear_operator(), num_matvecs, seed=seed)

    # --- redundancy ---------------------------------------------------------------------------------

    def redundant_parameters(self, *, seed: int = 0) -> list[tuple[str, str]]:
        """Pairs of same-shaped parameters that enter the outputs only through their sum.

        Such pairs (``bias_ih`` and ``bias_hh`` of a PyTorch RNN) make ``(δ, −δ)`` an exact null
        direction of the Hessian and the GGN for every ``δ``. A pair is flagged when moving one
        along a random ``δ`` and the other along ``−δ`` changes the outputs of the first batch by
        less than ``100 ε`` of moving the first alone (one ``jvp`` each).
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
        """Orthonormal basis ``(P, r)`` of the null directions ``(e_i, −e_i)/√2`` of every redundant
        pair found by :meth:`redundant_parameters`."""
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
            Directions, e.g. the eigenvectors of :meth:`eigenpairs`.
        bins : int, optional
            Number of contiguous bins of unrolled steps (default: one per step).
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
        sum to :meth:`layer_contributions` and all of it to ``vᵀCv``.
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
        (axis 1 of the per-term losses, i.e. of outputs ``(batch, T, …)``). Returns ``(k, T)``.
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
        bins = T if bins is None else bins
        if not isinstance(bins, (int, np.integer)) or not 1 <= bins <= T:
            raise ValueError(
                f"bins must be an integer in [1, {T}] (the sequence length), got {bins!r}"
            )
        self.op, self.T, self.bins = op, T, int(bins)
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
    """``IPR(v) = Σ_i v_i⁴ / (Σ_i v_i²)²`` of each column: 1 on one coordinate, ``1/P`` when spread
    evenly over ``P``."""
    V = np.asarray(vectors, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    sq = V * V
    return (sq * sq).sum(0) / sq.sum(0) ** 2


@dataclass(frozen=True, repr=False)
class Eigenpairs:
    """Eigenpairs of a curvature operator.

    Attributes
    ----------
    eigenvalues : (k,) float64
        Ordered as requested (descending for "LA").
    eigenvectors : (P, k) float64
        Unit eigenvectors on the flattened parameters.
    parameter_names, parameter_shapes : lists
        The parameters the vectors live on, in order.
    kind : str
        "ggn" or "hessian".
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    parameter_names: list[str]
    parameter_shapes: list[tuple[int, ...]]
    kind: str

    @property
    def ipr(self) -> np.ndarray:
        """Inverse participation ratio of each eigenvector (see :func:`inverse_participation_ratio`)."""
        return inverse_participation_ratio(self.eigenvectors)

    @property
    def parameter_mass(self) -> np.ndarray:
        """``(k, n_parameters)``: the share of each eigenvector's squared norm on each parameter."""
        sizes = [int(np.prod(s)) for s in self.parameter_shapes]
        sq = self.eigenvectors**2
        return np.stack([part.sum(0) for part in np.split(sq, np.cumsum(sizes)[:-1])], 1)

    def to_xarray(self) -> Any:
        """Dataset with dims ``("eigenvalue", "parameter")``."""
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

    Attributes
    ----------
    recurrent : (k, L) float64
        ``c_s`` for each bin ``s`` of unrolled steps.
    readout : (k,) float64
        Contribution of the readout's copy of the parameters.
    bin_edges : (L + 1,) int64
        Bin ``s`` holds the unrolled steps ``bin_edges[s] ≤ t < bin_edges[s+1]`` (0-based).
    kind : str
        "ggn" or "hessian".
    """

    recurrent: np.ndarray
    readout: np.ndarray
    bin_edges: np.ndarray
    kind: str

    @property
    def total(self) -> np.ndarray:
        """``vᵀCv`` along each direction: ``Σ_s c_s + c_readout`` (the eigenvalue, for eigenvectors)."""
        return self.recurrent.sum(1) + self.readout

    @property
    def lag(self) -> np.ndarray:
        """Lag ``T − t`` of each bin's centre from the last step (steps)."""
        T = self.bin_edges[-1]
        return T - (self.bin_edges[:-1] + self.bin_edges[1:] - 1) / 2

    def to_xarray(self) -> Any:
        """Dataset with dims ``("direction", "layer")``; ``layer`` is the bin centre (0-based step)."""
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
        """|c_s| against the lag on a log scale, one line per direction; returns the axes."""
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
    ``operator`` is anything with ``shape`` and ``matmat`` (a scipy ``LinearOperator``, an array).
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(operator)
    if not isinstance(num_matvecs, (int, np.integer)) or num_matvecs < 3:
        raise ValueError(f"num_matvecs must be an integer ≥ 3, got {num_matvecs!r}")
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

    Attributes
    ----------
    nodes, weights : (num_probes, m) float64
        Ritz values ``θ`` and weights ``w`` (each row of weights sums to 1; unused slots after an
        early Lanczos breakdown have weight 0).
    dim : int
        Dimension ``P`` of the operator.
    kind : str
        What the operator is ("ggn", "hessian", or "operator").
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    kind: str = "operator"

    def moment(self, order: int) -> float:
        """Estimate of ``tr(A^order) / P``: ``(1/n_v) Σ_q Σ_j w_{qj} θ_{qj}^order``."""
        return float((self.weights * self.nodes**order).sum(1).mean())

    def density(self, grid: np.ndarray, width: float | None = None) -> np.ndarray:
        """The density smoothed by Gaussians of standard deviation ``width`` on ``grid``
        (default: 1% of the spectral range)."""
        grid = np.asarray(grid, dtype=np.float64)
        used = self.weights > 0
        if width is None:
            span = np.ptp(self.nodes[used]) if used.any() else 1.0
            width = 0.01 * span if span > 0 else 1e-3
        z = (grid[:, None, None] - self.nodes[None]) / width
        kernel = np.exp(-0.5 * z * z) / (width * math.sqrt(2 * math.pi))
        return (kernel * self.weights[None]).sum(2).mean(1)

    def to_xarray(self) -> Any:
        """Dataset of nodes and weights with dims ``("probe", "node")``."""
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
        """The smoothed density (log scale by default); returns the axes."""
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
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(operator)
    P = A.shape[0]
    for name, value in (("num_probes", num_probes), ("lanczos_steps", lanczos_steps)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
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
