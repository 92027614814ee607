"""Full Lyapunov spectrum of a stacked nn.LSTM: analytic Jacobians vs per-step autograd + QR.

A 2-layer, 128-unit ``nn.LSTM`` (float64, CPU) has a 512-dimensional state ``(h¹, h², c¹, c²)``;
it is driven by Gaussian inputs (8 per step). lyapkit runs ``lyapunov_spectrum`` on
``lyapkit.adapt(lstm).as_map()`` (analytic Jacobians of the stack, ``reortho_every=1``) on the
torch and numpy backends. The baseline is the loop of most RNN papers: per step,
``torch.autograd.functional.jacobian`` of the stacked cell step (two ``nn.LSTMCell`` with the
module's weights), then ``torch.linalg.qr(J @ Q)`` and ``log|diag R|`` accumulated. First both run
a short common run from the same state and initial basis and the largest difference of their
exponents is printed. Target: baseline ms/step / lyapkit ms/step ≥ 10 (the backend ``"auto"``
picks). ``--quick``: 16 units, a few steps (a smoke test; its ratio says little).

    python benchmarks/bench_torch_rnn.py [--quick] [--repeats N]
"""

from __future__ import annotations

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

    # 2. Timings.
    base = best_of(
        lambda: baseline_spectrum(step, x0_t, Q0_t, inputs_t[:baseline_steps]), args.repeats
    )
    base_ms = 1e3 * base.best / baseline_steps
    rows = [["baseline: autograd.functional.jacobian + torch.linalg.qr", baseline_steps,
             fmt_seconds(base.best), f"{base_ms:.3f}", "1x", f"{base.spread:.2f}"]]  # fmt: skip
    auto = lyapkit.get_backend("auto", system).name
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
