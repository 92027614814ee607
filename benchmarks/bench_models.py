"""Training-step time of every model against ``nn.RNN`` of the same size and sequence length.

One training step is forward over a sequence of 784 steps (sequential MNIST's length), a
cross-entropy loss on a 10-class readout of the last state, backward, and an SGD update. Each model
is timed in the same run as the baseline, ``nn.RNN`` with an ``nn.Linear`` readout. Sizes: batch
64, hidden 128, one input (``--quick``: batch 8, hidden 16, 50 steps). Runs on the CPU and, when
``torch.cuda.is_available()``, on CUDA. Target: the linear-residual WCRNN within 3× of ``nn.RNN``.

Denormal numbers are flushed to zero (``torch.set_flush_denormal(True)``): saturated tanh units make
backward products denormal, and on x86 CPUs these stall the fused ``nn.RNN`` by up to 7× depending
on the weights (0.09 s → 0.59 s for ``W_hh = 0.99 I``), which would swamp the comparison.

    python benchmarks/bench_models.py [--quick] [--repeats N]
"""

from __future__ import annotations

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
from torch import nn

from lyapkit.trainers.models import (
    GRU,
    LRU,
    LSTM,
    WCRNN,
    BlockDiagonalRNN,
    ComplexDiagonalRNN,
    DenseLinearRNN,
    ElmanRNN,
    RealDiagonalRNN,
    residuals,
)

TARGET = 3.0


class RNNBaseline(nn.Module):
    """``nn.RNN`` with a readout of the last state."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.decoder = nn.Linear(hidden_size, output_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rnn(inputs)[0][:, -1])


def models(hidden: int) -> dict[str, nn.Module]:
    R = residuals.homogeneous(hidden, 0.99)
    return {
        "nn.RNN (baseline)": RNNBaseline(1, hidden, 10),
        "WCRNN linear residual": WCRNN(1, hidden, 10, residual=R, gamma=0.05),
        "WCRNN type A": WCRNN(1, hidden, 10, residual=R, gamma=0.05, variant="A"),
        "WCRNN type B": WCRNN(1, hidden, 10, residual=R, gamma=0.05, variant="B"),
        "Elman (WCR init)": ElmanRNN(1, hidden, 10, residual=R, gamma=0.05),
        "LSTM": LSTM(1, hidden, 10),
        "GRU": GRU(1, hidden, 10),
        "LRU": LRU(1, hidden, 10),
        "complex diagonal (polar)": ComplexDiagonalRNN(1, hidden, 10, parametrization="polar"),
        "real diagonal": RealDiagonalRNN(1, hidden, 10),
        "2x2 block diagonal": BlockDiagonalRNN(1, hidden, 10),
        "dense linear": DenseLinearRNN(1, hidden, 10),
    }


def training_step(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        if inputs.is_cuda:
            torch.cuda.synchronize()

    return step


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    batch, hidden, steps = (8, 16, 50) if args.quick else (64, 128, 784)
    threads = use_all_cores_in_torch()
    torch.set_flush_denormal(True)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print_header(
        "Training step of each model vs nn.RNN", args, batch=batch, hidden=hidden, steps=steps,
        torch_threads=threads, flush_denormal=True,
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else "not available",
    )  # fmt: skip
    verdicts = []
    for device in devices:
        torch.manual_seed(0)
        inputs = torch.randn(batch, steps, 1, device=device)
        labels = torch.randint(0, 10, (batch,), device=device)
        rows, baseline = [], None
        for label, model in models(hidden).items():
            model = model.to(device)
            timing = best_of(training_step(model, inputs, labels), args.repeats)
            baseline = baseline or timing.best
            rows.append([label, fmt_seconds(timing.best), fmt_ratio(timing.best / baseline)])
            if label == "WCRNN linear residual":
                verdicts.append((device, timing.best / baseline))
        print_table(["model", "training step", "vs nn.RNN"], rows, title=f"device: {device}")
    for device, ratio in verdicts:
        print(f"target: linear-residual WCRNN within {TARGET:g}x of nn.RNN on {device}: "
              f"{fmt_ratio(ratio)} -> {verdict(ratio <= TARGET)}")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
