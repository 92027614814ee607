"""Top-10 curvature eigenvalues of a WCRNN: lyapkit's LOBPCG against PyHessian's power iteration.

Model: ``WCRNN(1, 100, 10, residual=residuals.homogeneous(100, 1.0), gamma=0.05)`` (float32, P =
11 210 parameters) on seeded ``randn`` inputs of 784 steps, batch 128, random labels 0..9,
mean cross-entropy (``--quick``: hidden 16, 50 steps, batch 8, k = 3). Denormals are flushed to
zero, as in ``bench_models.py``.

lyapkit: ``CurvatureOperator(model, (inputs, labels), "cross_entropy", kind=...).eigenpairs(k,
tol=1e-4)`` (LOBPCG, blocks of ``k + max(4, k // 2)`` vectors, which the operator multiplies
``chunk`` columns at a time: lyapkit's default, 8) for the GGN and for the Hessian;
``--tol`` sets the tolerance (lyapkit's default 1e-6 is out of reach in float32, see ``TOL``).

Baseline, PyHessian-style (Yao et al. 2020, ``hessian.eigenvalues`` in amirgholami/PyHessian):
loss and gradient with ``create_graph=True`` once, then for each of the top k eigenvalues power
iteration on Hessian-vector products ``torch.autograd.grad(g, params, grad_outputs=v,
retain_graph=True)``, Gram–Schmidt against the eigenvectors already found (deflation), stopping
when the eigenvalue changes by less than 1e-3 relative or after 100 products (PyHessian's
defaults). Power iteration finds the eigenvalues of largest magnitude; the top one is compared with
lyapkit's top Hessian eigenvalue. The forward pass is ``model(inputs)`` inside
``model.reference_path()``, the model's twice-differentiable loop over ``model.step``, which for
this ``readout="last"`` model keeps only the current state. (Until the reference path did that, it
stacked all T states and sliced out the last, and the double backward of that slice zero-filled a
whole ``(batch, T, hidden)`` tensor per step: O(T²), 10-35x slower products at 784 steps.)

Products: columns multiplied by the operator (LOBPCG multiplies blocks of columns at a time;
``CurvatureOperator.matmat`` is wrapped to count them) and Hessian-vector products of the baseline.

Memory: each method runs in a fresh subprocess (this script with a hidden ``--only METHOD``). It
builds the model and data and runs the warm-up (one product), so that one-off allocations (thread
pools, torch.func set-up, scipy's import) do not count. On the CPU the peak is then the process's
high-water resident set size (``getrusage(RUSAGE_SELF).ru_maxrss``) minus its resident set size at
that point (``/proc/self/statm``): the most the method added (the warm-up's own transient, one
product, is at most the method's). On CUDA it is ``torch.cuda.max_memory_allocated()`` minus the
memory allocated at that point (the caching allocator's reserve and the CUDA context are not
counted). Both are compared with the P × P dense matrix in the model's dtype (P² × 4 bytes,
0.50 GB at full size).

Timing: best of ``--repeats`` after that warm-up; a solve is not run twice, so that the full size
runs once. Target: none numeric in the issue; "faster than the baseline and memory far below the
dense matrix" is read as a speed-up above 1 against the baseline and a peak at
most a tenth of the dense matrix. On a busy machine, ``OMP_WAIT_POLICY=PASSIVE`` keeps torch's and
OpenBLAS's spinning threads (LOBPCG alternates the two) from stalling each other.

    python benchmarks/bench_curvature.py [--quick] [--repeats N] [--tol TOL] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import subprocess
import sys
import time

import torch
from _timing import (
    best_of,
    cli,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    print_footer,
    print_header,
    print_table,
    use_all_cores_in_torch,
    verdict,
)

from lyapkit.curvature import CurvatureOperator
from lyapkit.trainers.models import WCRNN, residuals

METHODS = ("lyapkit-ggn", "lyapkit-hessian", "baseline")
LABELS = {
    "lyapkit-ggn": "lyapkit GGN, LOBPCG",
    "lyapkit-hessian": "lyapkit Hessian, LOBPCG",
    "baseline": "baseline: PyHessian power iteration",
}
MEMORY_TARGET = 0.1  # "far below the dense matrix": at most a tenth of it
#: LOBPCG's residual tolerance relative to max|λ|. lyapkit's default, 1e-6, is below the noise of
#: these float32 products: even at 50 steps (hidden 100, batch 128) LOBPCG on the indefinite
#: Hessian lost stability and ran its 200 iterations. 1e-4 converges there, with eigenvalues equal
#: to 1e-6's to ~1e-8 relative.
TOL = 1e-4
POWER_TOL, POWER_MAXITER = 1e-3, 100  # PyHessian's defaults


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"hidden": 16, "steps": 50, "batch": 8, "k": 3}
    return {"hidden": 100, "steps": 784, "batch": 128, "k": 10}


def build(size: dict[str, int], device: str) -> tuple[WCRNN, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    n = size["hidden"]
    model = WCRNN(1, n, 10, residual=residuals.homogeneous(n, 1.0), gamma=0.05).to(device)
    inputs = torch.randn(size["batch"], size["steps"], 1).to(device)
    labels = torch.randint(0, 10, (size["batch"],)).to(device)
    return model, inputs, labels


# --- the methods ----------------------------------------------------------------------------------


def counted_operator(model, data, kind: str, counter: dict[str, int]) -> CurvatureOperator:
    """A curvature operator whose ``matmat`` counts the columns and calls it multiplies."""
    op = CurvatureOperator(model, data, "cross_entropy", kind=kind)
    matmat = op.matmat

    def counting_matmat(V):
        counter["columns"] += 1 if V.ndim == 1 else V.shape[1]
        counter["calls"] += 1
        return matmat(V)

    op.matmat = counting_matmat
    return op


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def lyapkit_eigenvalues(model, data, kind: str, k: int, tol: float) -> dict:
    counter = {"columns": 0, "calls": 0}
    warnings = _Warnings()  # lyapkit logs a warning when LOBPCG misses the tolerance
    logging.getLogger("lyapkit.curvature").addHandler(warnings)
    try:
        pairs = counted_operator(model, data, kind, counter).eigenpairs(k, tol=tol)
    finally:
        logging.getLogger("lyapkit.curvature").removeHandler(warnings)
    return {
        "eigenvalues": [float(x) for x in pairs.eigenvalues],
        "products": counter["columns"],
        "calls": counter["calls"],
        "warnings": warnings.messages,
    }


def _dot(xs, ys) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(xs, ys, strict=True))


def _normalized(xs):
    norm = math.sqrt(float(_dot(xs, xs)))
    return [x / (norm + 1e-6) for x in xs]  # PyHessian's normalization


def gradient_graph(model, inputs, labels):
    """The parameters and the loss gradient with its graph (``create_graph=True``), through the
    model's reference path."""
    params = [p for p in model.parameters() if p.requires_grad]
    with model.reference_path():
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
    return params, torch.autograd.grad(loss, params, create_graph=True)


def power_iteration(model, inputs, labels, k: int, seed: int = 0) -> dict:
    """PyHessian's ``hessian.eigenvalues(maxIter=100, tol=1e-3, top_n=k)`` on one batch."""
    t0 = time.perf_counter()
    params, grads = gradient_graph(model, inputs, labels)
    setup = time.perf_counter() - t0
    gen = torch.Generator(device="cpu").manual_seed(seed)
    values, vectors, iterations = [], [], []
    for _ in range(k):
        v = _normalized([torch.randn(p.shape, generator=gen).to(p) for p in params])
        eigenvalue = None
        for i in range(POWER_MAXITER):  # noqa: B007 (i counts the products after the loop)
            for w in vectors:  # deflation: Gram-Schmidt against the eigenvectors found
                c = _dot(w, v)
                v = [x - c * y for x, y in zip(v, w, strict=True)]
            v = _normalized(v)
            Hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
            current = float(_dot(Hv, v))
            v = _normalized(Hv)
            if (
                eigenvalue is not None
                and abs(eigenvalue - current) / (abs(eigenvalue) + 1e-6) < POWER_TOL
            ):
                break
            eigenvalue = current
        values.append(eigenvalue)
        vectors.append(v)
        iterations.append(i + 1)
    return {
        "eigenvalues": values,
        "products": sum(iterations),
        "iterations": iterations,
        "setup_s": setup,
    }


def baseline_warmup(model, inputs, labels) -> None:
    params, grads = gradient_graph(model, inputs, labels)
    torch.autograd.grad(grads, params, grad_outputs=[torch.ones_like(p) for p in params])


# --- one method in this process (the subprocess side) ---------------------------------------------


def _rss_bytes() -> int:
    """Current resident set size (Linux), or the high-water mark where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _maxrss_bytes()


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_one(method: str, args: argparse.Namespace) -> dict:
    import scipy.sparse.linalg  # noqa: F401  (eigenpairs imports it: keep it out of the peak)

    size = sizes(args.quick)
    device = "cpu" if args.device == "auto" else args.device
    model, inputs, labels = build(size, device)
    data = (inputs, labels)
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    k = size["k"]
    if method == "baseline":

        def fn():
            out = power_iteration(model, inputs, labels, k)
            sync()
            return out

        def warmup():
            baseline_warmup(model, inputs, labels)
            sync()
    else:
        kind = method.removeprefix("lyapkit-")

        def fn():
            out = lyapkit_eigenvalues(model, data, kind, k, args.tol)
            sync()
            return out

        def warmup():
            op = CurvatureOperator(model, data, "cross_entropy", kind=kind)
            op.matvec(torch.ones(op.num_params, device=device))
            sync()

    # The warm-up (one product) runs before the reference point, so that lazy one-off allocations
    # (thread pools, torch.func set-up) do not count; its own transient peak is at most the
    # method's, whose products it repeats.
    warmup()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    timing = best_of(fn, args.repeats, warmup=lambda: None)
    peak = (torch.cuda.max_memory_allocated() if cuda else _maxrss_bytes()) - base
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        **timing.result,
        "times": list(timing.times),
        "peak_bytes": peak,
        "dense_bytes": params**2 * model.decoder.weight.element_size(),
        "num_params": params,
        "k": k,
    }


# --- the driver -----------------------------------------------------------------------------------


def measure(method: str, device: str, args: argparse.Namespace) -> dict | None:
    """Run ``method`` in a fresh subprocess and return its result (None if it failed)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--only", method, "--device", device]
    cmd += ["--repeats", str(args.repeats), "--tol", repr(args.tol)]
    cmd += ["--quick"] if args.quick else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(f"{method} on {device} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return None


def fmt_bytes(b: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def report(device: str, results: dict[str, dict], k: int) -> list[tuple[str, bool]]:
    """Print the tables for one device; return the target lines with their verdicts."""
    rows = []
    for method, r in results.items():
        best = min(r["times"])
        spread = max(r["times"]) / best
        calls = f" ({r['calls']} calls)" if "calls" in r else ""
        rows.append([
            LABELS[method], fmt_seconds(best), f"{spread:.2f}", f"{r['products']}{calls}",
            fmt_seconds(best / r["products"]), fmt_float(r["eigenvalues"][0], ".6g"),
            fmt_bytes(r["peak_bytes"]), fmt_ratio(r["peak_bytes"] / r["dense_bytes"]),
        ])  # fmt: skip
    any_r = next(iter(results.values()))
    print_table(
        ["method", f"time (top {k})", "spread", "products", "per product", "top eigenvalue",
         "peak memory", "vs dense"],
        rows,
        title=f"device: {device}; P = {any_r['num_params']} parameters, dense P x P matrix "
              f"{fmt_bytes(any_r['dense_bytes'])}",
    )  # fmt: skip
    for method, r in results.items():
        print(f"{LABELS[method]} eigenvalues: " + ", ".join(f"{x:.5g}" for x in r["eigenvalues"]))
        if "iterations" in r:
            print(f"  power iterations per eigenvalue: {r['iterations']}")
            if min(r["eigenvalues"]) < 0:
                print("  (power iteration finds the largest |eigenvalue|: negative ones come in, "
                      "so this list is not the largest-algebraic top k of LOBPCG)")  # fmt: skip
        for message in r.get("warnings", []):
            print(f"  WARNING from lyapkit: {message}")
    print()
    lyap_h, base = results.get("lyapkit-hessian"), results.get("baseline")
    if lyap_h is not None and base is not None:
        a, b = base["eigenvalues"][0], lyap_h["eigenvalues"][0]
        print(f"agreement: top Hessian eigenvalue, baseline {a:.6g} vs lyapkit {b:.6g}: "
              f"relative difference {abs(a - b) / max(abs(b), 1e-30):.2e}")  # fmt: skip
        print(
            "  (power iteration stops at a 1e-3 relative change: only rough agreement is expected)"
        )
    verdicts = []
    for method in ("lyapkit-ggn", "lyapkit-hessian"):
        if method not in results:
            continue
        if base is not None:
            ratio = min(base["times"]) / min(results[method]["times"])
            print(f"speed-up {device}: baseline / {LABELS[method]} = {fmt_ratio(ratio)}")
            verdicts.append((f"{LABELS[method]} {fmt_ratio(ratio)} faster", ratio > 1))
        ratio = results[method]["peak_bytes"] / results[method]["dense_bytes"]
        verdicts.append(
            (f"{LABELS[method]} peak {fmt_ratio(ratio)} of dense", ratio <= MEMORY_TARGET)
        )
    for method, r in results.items():
        ratio = r["peak_bytes"] / r["dense_bytes"]
        print(f"memory {device}: {LABELS[method]} peak / dense matrix = {fmt_ratio(ratio)}")
    print()
    return verdicts


def parse_args() -> argparse.Namespace:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument(
        "--tol", type=float, default=TOL, help=f"LOBPCG's relative tolerance (default {TOL:g})"
    )
    own.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: the CPU, and CUDA when available",
    )
    own.add_argument("--only", choices=METHODS, help=argparse.SUPPRESS)  # the subprocess side
    extra, rest = own.parse_known_args()  # fmt: skip
    if "-h" in rest or "--help" in rest:
        print(own.format_help().replace("usage:", "extra options, usage:", 1))
    sys.argv[1:] = rest
    args = cli(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    return argparse.Namespace(**vars(args), **vars(extra))


def main() -> None:
    args = parse_args()
    threads = use_all_cores_in_torch()
    torch.set_flush_denormal(True)
    if args.only:
        print("RESULT " + json.dumps(run_one(args.only, args)))
        return
    size = sizes(args.quick)
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
               "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]  # fmt: skip
    print_header(
        "Top-k curvature eigenvalues of a WCRNN: lyapkit LOBPCG vs PyHessian power iteration",
        args, **size, lobpcg_tol=args.tol,
        torch_threads=threads, flush_denormal=True,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"),
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else "not available",
    )  # fmt: skip
    verdicts = []
    for device in devices:
        results = {}
        for method in METHODS:
            r = measure(method, device, args)
            if r is not None:
                results[method] = r
        if results:
            verdicts += [(device, *v) for v in report(device, results, size["k"])]
    ok = bool(verdicts) and all(v for _, _, v in verdicts)
    details = "; ".join(f"{d}: {text} -> {verdict(v)}" for d, text, v in verdicts)
    print(f"target: faster than the baseline and memory far below the "
          f"dense matrix (peak <= {MEMORY_TARGET:g}x dense): {details or 'no results'} -> "
          f"{verdict(ok)}")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
