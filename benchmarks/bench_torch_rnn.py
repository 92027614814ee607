"""Full Lyapunov spectrum of a stacked nn.LSTM: analytic Jacobians vs per-step autograd + QR.

A 2-layer, 128-unit ``nn.LSTM`` (float64, CPU) has a 512-dimensional state ``(h¹, h², c¹, c²)``;
it is driven by Gaussian inputs (8 per step). lyapkit runs ``lyapunov_spectrum`` on
``lyapkit.adapt(lstm).as_map()`` (analytic Jacobians of the stack, ``reortho_every=1``) on the
torch, numpy and (where installed) numba backends. The baseline is the loop of most RNN papers: per step,
``torch.autograd.functional.jacobian`` of the stacked cell step (two ``nn.LSTMCell`` with the
module's weights), then ``torch.linalg.qr(J @ Q)`` and ``log|diag R|`` accumulated. First both run
a short common run from the same state and initial basis and the largest difference of their
exponents is printed. Target: baseline ms/step / lyapkit ms/step ≥ 10 (the backend ``"auto"``
picks). The floor rows time what any QR method pays per step once ``J`` is known, the tangent
product ``J Q`` and the factorisation of its result, for a fixed ``J`` of the map: by the numba
backend's BLAS calls on one thread (GEMM + CholeskyQR) and by torch (``J @ Q`` +
``torch.linalg.qr``); baseline / floor bounds the speed-up of every backend that forms ``J``. The baseline runs on
every core and on one torch thread; speed-ups are against the faster of the two.
``--quick``: 16 units, a few steps (a smoke test; its ratio says little).

    python benchmarks/bench_torch_rnn.py [--quick] [--repeats N]
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from _timing import (
    best_of,
    cli,
    fmt_ratio,
    fmt_seconds,
    print_footer,
    print_header,
    print_table,
    use_all_cores_in_torch,
    verdict,
)

import lyapkit
from lyapkit.lyapunov import _random_bases  # the basis lyapunov_spectrum draws from its seed

LAYERS, INPUTS, SEED = 2, 8, 0
TARGET = 10.0  # baseline ms/step / lyapkit ms/step
BACKENDS = {"torch": {"dtype": "float64", "device": "cpu"}, "numpy": {}}
if importlib.util.find_spec("numba") is not None:
    BACKENDS["numba"] = {}


def cell_step(lstm: torch.nn.LSTM):
    """``(s, u) -> s'`` of the stack by ``nn.LSTMCell``s holding copies of the module's weights."""
    H, cells = lstm.hidden_size, []
    for layer in range(lstm.num_layers):
        cell = torch.nn.LSTMCell(INPUTS if layer == 0 else H, H).double()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(lstm, f"{name}_l{layer}"))
        cells.append(cell)
    L = len(cells)

    def step(s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        hs, cs = s[: L * H].split(H), s[L * H :].split(H)
        x, new_h, new_c = u[None], [], []
        for layer, cell in enumerate(cells):
            x, c = cell(x, (hs[layer][None], cs[layer][None]))
            new_h.append(x[0])
            new_c.append(c[0])
        return torch.cat(new_h + new_c)

    return step


def baseline_spectrum(step, x0: torch.Tensor, Q0: torch.Tensor, inputs: torch.Tensor):
    """Exponents (descending) by the per-step autograd Jacobian + Householder QR loop."""
    x, Q = x0.clone(), Q0.clone()
    acc = torch.zeros(Q.shape[1], dtype=torch.float64)
    for u in inputs:
        J = torch.autograd.functional.jacobian(lambda s, u=u: step(s, u), x)
        with torch.no_grad():
            x = step(x, u)
        Q, R = torch.linalg.qr(J @ Q)
        acc += torch.log(torch.abs(torch.diagonal(R)))
    return np.sort(acc.numpy() / len(inputs))[::-1]


def structured_product(lstm: torch.nn.LSTM, s: np.ndarray, u: np.ndarray):
    """``Q ↦ J Q`` of the stacked LSTM at ``(s, u)`` without forming ``J``: per layer the gate
    pre-activations' tangents ``dA = W_hh dh + W_ih dx`` (three ``4H × H`` by ``H × k`` GEMMs for
    two layers, against the ``n × n`` by ``n × k`` of ``J Q``), then
    ``dc' = Σ_g β_g dA_g + f dc`` and ``dh' = Σ_g γ_g dA_g + κ f dc`` (:mod:`lyapkit.maps.rnn`)."""
    H, L = lstm.hidden_size, lstm.num_layers
    weights = [
        {name: getattr(lstm, f"{name}_l{layer}").detach().numpy() for name in
         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        for layer in range(L)
    ]  # fmt: skip
    sig = lambda a: 0.5 * (1.0 + np.tanh(0.5 * a))  # noqa: E731
    x, coefficients = u, []
    for layer, w in enumerate(weights):
        h, c = s[layer * H : (layer + 1) * H], s[(L + layer) * H : (L + layer + 1) * H]
        a = w["weight_ih"] @ x + w["bias_ih"] + w["weight_hh"] @ h + w["bias_hh"]
        i, f, g, o = sig(a[:H]), sig(a[H : 2 * H]), np.tanh(a[2 * H : 3 * H]), sig(a[3 * H :])
        c1 = f * c + i * g
        tc = np.tanh(c1)
        kappa = o * (1 - tc * tc)
        beta = np.stack([g * i * (1 - i), c * f * (1 - f), i * (1 - g * g), 0 * o])
        gamma = kappa * beta + np.stack([0 * o, 0 * o, 0 * o, tc * o * (1 - o)])
        coefficients.append((beta[..., None], gamma[..., None], f[:, None], (kappa * f)[:, None]))
        x = o * tc

    def apply(Q: np.ndarray) -> np.ndarray:
        out, below = np.empty_like(Q), None
        for layer, (w, (beta, gamma, f, kf)) in enumerate(zip(weights, coefficients, strict=True)):
            rows_h, rows_c = slice(layer * H, (layer + 1) * H), slice((L + layer) * H, None)
            rows_c = slice(rows_c.start, rows_c.start + H)
            dA = w["weight_hh"] @ Q[rows_h]
            if below is not None:
                dA += w["weight_ih"] @ below
            dA = dA.reshape(4, H, -1)
            dc = Q[rows_c]
            out[rows_c] = (beta * dA).sum(0) + f * dc
            out[rows_h] = below = (gamma * dA).sum(0) + kf * dc
        return out

    return apply


def floors(J, apply, Q0: np.ndarray, repeats: int) -> list[tuple[str, object]]:
    """``(label, Timing)`` of one ``Q ← qr(J Q)`` with a fixed ``J``: numba BLAS on one thread
    (the numba backend's own calls), the structured product ``apply`` (numpy, one BLAS thread)
    with the same CholeskyQR, and torch."""
    out = []
    if "numba" in BACKENDS:
        from lyapkit.backends import _numba_blas as nb

        V, W, G = np.ascontiguousarray(Q0.T), np.empty_like(Q0), np.empty_like(Q0)
        r = np.empty(len(Q0))

        def numba_floor():
            nb.tangent_product(J, V, W)
            nb.orthonormalise(W, G, r)

        def structured_floor():
            nb.orthonormalise(np.ascontiguousarray(apply(Q0).T), G, r)

        with nb.single_threaded_blas():
            out.append(("J Q + CholeskyQR (numba BLAS, 1 thread)", best_of(numba_floor, repeats)))
            out.append(("structured J Q (gate weights, numpy) + CholeskyQR, 1 thread",
                        best_of(structured_floor, repeats)))  # fmt: skip
    J_t, Q_t = torch.as_tensor(J), torch.as_tensor(Q0)
    out.append(("J @ Q + torch.linalg.qr", best_of(lambda: torch.linalg.qr(J_t @ Q_t), repeats)))
    return out


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    hidden = 16 if args.quick else 128
    steps, baseline_steps, check_steps = (20, 5, 5) if args.quick else (300, 20, 10)
    threads = use_all_cores_in_torch()
    print_header(
        f"nn.LSTM({INPUTS}, {hidden}, num_layers={LAYERS}) full spectrum vs per-step autograd + QR",
        args, steps=steps, baseline_steps=baseline_steps, reortho_every=1, torch_threads=threads,
    )  # fmt: skip

    torch.manual_seed(SEED)
    lstm = torch.nn.LSTM(INPUTS, hidden, LAYERS).double()
    system = lyapkit.adapt(lstm).as_map()
    n = system.dim
    rng = np.random.default_rng(SEED)
    x0 = system.initial_state(rng)
    inputs = rng.standard_normal((steps, INPUTS))
    # With x0 given, lyapunov_spectrum draws the initial basis as the first use of its seeded rng.
    Q0 = _random_bases(np.random.default_rng(SEED), 1, n, n)[0]
    step = cell_step(lstm)
    x0_t, Q0_t, inputs_t = torch.as_tensor(x0), torch.as_tensor(Q0), torch.as_tensor(inputs)

    def spectrum(backend: str, n_steps: int):
        return lambda: lyapkit.lyapunov_spectrum(
            system, steps=n_steps, x0=x0, inputs=inputs[:n_steps], seed=SEED, backend=backend,
            history=False, reortho_every=1, **BACKENDS.get(backend, {}),
        )  # fmt: skip

    # 1. Same exponents on a common short run.
    reference = baseline_spectrum(step, x0_t, Q0_t, inputs_t[:check_steps])
    rows = []
    for name in BACKENDS:
        lam = spectrum(name, check_steps)().exponents
        finite = np.isfinite(reference)
        diff = np.abs(lam[finite] - reference[finite]).max()
        rows.append([name, check_steps, f"{diff:.2e}", f"{lam[0]:.6f}", f"{reference[0]:.6f}"])
    print_table(
        ["backend", "steps", "max|dlambda|", "lambda1", "baseline"], rows,
        title="Check: lyapkit vs baseline on a common run (same x0, inputs and initial basis)",
    )  # fmt: skip

    # 2. Timings. The baseline on every core and on one torch thread (on a shared machine the
    # threads wait for each other and one thread is faster): the faster one counts.
    rows, base_ms = [], np.inf
    for n_threads in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n_threads)
        base = best_of(
            lambda: baseline_spectrum(step, x0_t, Q0_t, inputs_t[:baseline_steps]), args.repeats
        )
        ms = 1e3 * base.best / baseline_steps
        base_ms = min(base_ms, ms)
        rows.append([f"baseline: autograd.functional.jacobian + torch.linalg.qr, "
                     f"{n_threads} thread{'s' * (n_threads > 1)}", baseline_steps,
                     fmt_seconds(base.best), f"{ms:.3f}", "", f"{base.spread:.2f}"])  # fmt: skip
    torch.set_num_threads(threads)
    for row in rows:
        row[4] = fmt_ratio(base_ms / float(row[3]))
    auto = lyapkit.get_backend("auto", system).name
    floor_repeats = 5 * args.repeats
    J, apply = system.jacobian(x0, inputs[0]), structured_product(lstm, x0, inputs[0])
    print(f"structured product: max |apply(Q) - J Q| = {np.abs(apply(Q0) - J @ Q0).max():.1e}")
    for label, t in floors(J, apply, Q0, floor_repeats):
        ms = 1e3 * t.best
        rows.append([f"floor: {label}", 1, fmt_seconds(t.best), f"{ms:.3f}",
                     fmt_ratio(base_ms / ms), f"{t.spread:.2f}"])  # fmt: skip
    ratios = {}
    for name in BACKENDS:
        t = best_of(spectrum(name, steps), args.repeats)
        ms = 1e3 * t.best / steps
        ratios[name] = base_ms / ms
        label = f"lyapkit {name} (analytic Jacobians)" + (" - auto" if name == auto else "")
        rows.append([label, steps, fmt_seconds(t.best), f"{ms:.3f}", fmt_ratio(ratios[name]),
                     f"{t.spread:.2f}"])  # fmt: skip
    print_table(
        ["method", "steps", "best time", "ms/step", "speed-up", "spread"], rows,
        title=f"Full spectrum, {n}-dimensional state, float64, CPU, reortho_every=1",
    )  # fmt: skip
    ok = ratios[auto] >= TARGET
    print(f"target: baseline / lyapkit ({auto}, the backend 'auto' picks) >= {TARGET:g}x: "
          f"{fmt_ratio(ratios[auto])} -> {verdict(ok)}")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
