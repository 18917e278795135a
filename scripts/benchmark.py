"""Throughput of unsupnn's training loops against a bare PyTorch loop and scikit-learn, side by side.

    python scripts/benchmark.py                      # MNIST from ../shared/data if present, else random data
    python scripts/benchmark.py --root ~/data --epochs 1 --out benchmark.json

Samples per second of one epoch, RBM 784 -> 500 at batch 100 (CD-1, PCD-1, CD-10), through
(a) the unsupnn Lightning Trainer path, (b) a bare loop doing the same update on the same tensors,
(c) scikit-learn's BernoulliRBM (one iteration); plus a plain matrix-product throughput for the same
shapes, so every figure is also a fraction of what the machine can do. Prints a markdown table and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

N_VISIBLE, N_HIDDEN, BATCH, LR = 784, 500, 100, 0.05


def load_data(root: Path | None, n: int) -> tuple[torch.Tensor, str]:
    if root is not None and (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        from torchvision.datasets import MNIST

        x = MNIST(str(root), train=True, download=False).data[:n].reshape(-1, N_VISIBLE).float() / 255.0
        return x.contiguous(), f"MNIST ({root})"
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((n, N_VISIBLE), 0.13), generator=g), "random binary (MNIST not found)"


def bare_rbm_epoch(x: torch.Tensor, k: int, persistent: bool) -> float:
    """The textbook CD-k / PCD-k update written out by hand, SGD with momentum 0.9 like the default."""
    W = torch.randn(N_HIDDEN, N_VISIBLE) * 0.01
    b, c = torch.zeros(N_VISIBLE), torch.zeros(N_HIDDEN)
    vel = [torch.zeros_like(t) for t in (W, b, c)]
    chains = torch.bernoulli(x[:BATCH]) if persistent else None
    perm = torch.randperm(len(x))
    xs = x[perm]
    start = time.perf_counter()
    for i in range(0, len(xs) - BATCH + 1, BATCH):
        v0 = xs[i : i + BATCH]
        h0 = torch.sigmoid(F.linear(v0, W, c))
        v = chains if persistent else v0
        for _ in range(k):
            h = torch.bernoulli(torch.sigmoid(F.linear(v, W, c)) if v is not v0 else h0)
            v = torch.bernoulli(torch.sigmoid(F.linear(h, W.t(), b)))
        if persistent:
            chains = v
        hk = torch.sigmoid(F.linear(v, W, c))
        grads = ((h0.t() @ v0 - hk.t() @ v) / BATCH, (v0 - v).mean(0), (h0 - hk).mean(0))
        for p, g, m in zip((W, b, c), grads, vel):
            m.mul_(0.9).add_(g)
            p.add_(m, alpha=LR)
    return time.perf_counter() - start


def unsupnn_rbm_epoch(x: torch.Tensor, k: int, persistent: bool) -> float:
    import pytorch_lightning as pl

    from unsupnn.data import ArrayDataModule
    from unsupnn.lit.rbm import LitRBM

    class Data(ArrayDataModule):
        def load_arrays(self):
            return x.numpy(), None

    dm = Data(batch_size=BATCH, val_fraction=0.0, test_fraction=0.0)
    model = LitRBM(n_features=N_VISIBLE, n_hidden=N_HIDDEN, k=k, persistent=persistent, n_chains=BATCH, lr=LR)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    dm.setup()
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    return time.perf_counter() - start


def sklearn_rbm_epoch(x: torch.Tensor) -> float:
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=N_HIDDEN, batch_size=BATCH, n_iter=1, learning_rate=LR, random_state=0)
    data = x.numpy().astype(np.float64)  # BernoulliRBM computes in float64 whatever it is given
    start = time.perf_counter()
    rbm.fit(data)
    return time.perf_counter() - start


def matmul_flops(reps: int = 200) -> float:
    """FLOP/s of the product shapes a CD step uses (batch x visible x hidden), float32."""
    a, w = torch.rand(BATCH, N_VISIBLE), torch.rand(N_HIDDEN, N_VISIBLE)
    for _ in range(10):
        a @ w.t()
    start = time.perf_counter()
    for _ in range(reps):
        a @ w.t()
    return 2 * BATCH * N_VISIBLE * N_HIDDEN * reps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--examples", type=int, default=60_000)
    parser.add_argument("--out", type=Path, default=Path("benchmark.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

    x, source = load_data(args.root, args.examples)
    n_steps = len(x) // BATCH
    flops = matmul_flops()
    # Matrix products per CD-k step (batch x 784 x 500): 2 per Gibbs step, 1 for h(v_k), 2 for the update.
    rows = []
    for name, k, persistent in (("CD-1", 1, False), ("PCD-1", 1, True), ("CD-10", 10, False)):
        ideal = n_steps * (2 * k + 3) * 2 * BATCH * N_VISIBLE * N_HIDDEN / flops
        t_bare = bare_rbm_epoch(x, k, persistent)
        t_lit = unsupnn_rbm_epoch(x, k, persistent)
        row = {"loop": f"RBM {name}", "unsupnn_samples_per_s": len(x) / t_lit, "bare_samples_per_s": len(x) / t_bare,
               "ratio_vs_bare": t_bare / t_lit, "unsupnn_fraction_of_matmul_peak": ideal / t_lit}
        if name == "PCD-1":  # BernoulliRBM is PCD-1 with batch_size chains
            t_sk = sklearn_rbm_epoch(x)
            row.update(sklearn_samples_per_s=len(x) / t_sk, ratio_vs_sklearn=t_sk / t_lit)
        rows.append(row)

    print(f"\nData: {source}, {len(x)} examples; batch {BATCH}; {N_VISIBLE} -> {N_HIDDEN}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"Matrix-product throughput at these shapes: {flops / 1e9:.1f} GFLOP/s\n")
    print("| loop | unsupnn samples/s | bare loop samples/s | unsupnn / bare | scikit-learn samples/s | unsupnn / scikit-learn | fraction of matmul peak |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        sk = f"{r['sklearn_samples_per_s']:.0f}" if "sklearn_samples_per_s" in r else ""
        skr = f"{r['ratio_vs_sklearn']:.2f}x" if "ratio_vs_sklearn" in r else ""
        print(f"| {r['loop']} | {r['unsupnn_samples_per_s']:.0f} | {r['bare_samples_per_s']:.0f} | "
              f"{r['ratio_vs_bare']:.2f}x | {sk} | {skr} | {r['unsupnn_fraction_of_matmul_peak']:.2f} |")
    args.out.write_text(json.dumps({"data": source, "gflops": flops / 1e9, "rows": rows}, indent=2))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
