"""Loading cost against compute: serving a batch of MNIST-shaped data vs one RBM CD-1 step.

    python scripts/benchmark_data.py                       # real MNIST from ../shared/data if present
    python scripts/benchmark_data.py --root ~/data --device cuda --hidden 128 500

Prints milliseconds per batch of each loader and its share of one CD-1 step (the target: in-memory
loading under 5% of a step at batch size 100). Timings are medians over repeated epochs / step runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from unsupnn.data import InMemoryLoader, MappedLoader, MappedRows, VisionDataModule
from unsupnn.data.base import binarizer
from unsupnn.nn.rbm import RBM

REPO = Path(__file__).resolve().parents[1]


def mnist_or_random(root: Path) -> tuple[str, torch.Tensor]:
    if (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        dm = VisionDataModule(dataset="mnist", root=str(root), val_fraction=0.0)
        dm.setup()
        return f"MNIST training images from {root}", dm.x_train
    gen = torch.Generator().manual_seed(0)
    return "random binary data (MNIST not found)", torch.rand(60_000, 784, generator=gen).round()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ms_per_batch(loader, device: torch.device, *, epochs: int, max_batches: int | None = None) -> float:
    """Median over epochs of (time to draw the epoch's batches and move them to the device) per batch."""
    times = []
    for _ in range(epochs):
        sync(device)
        start, n = time.perf_counter(), 0
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x.to(device, non_blocking=True)
            n += 1
            if max_batches and n == max_batches:
                break
        sync(device)
        times.append((time.perf_counter() - start) / n)
    return 1000 * statistics.median(times)


def ms_per_cd1_step(x: torch.Tensor, n_hidden: int, batch_size: int, device: torch.device, *, steps: int, repeats: int) -> float:
    """What one CD-1 update of LitRBM computes, plus the optimizer step, without logging."""
    torch.manual_seed(0)
    rbm = RBM(n_visible=x.shape[1], n_hidden=n_hidden).to(device)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.05, momentum=0.9)
    batches = x[: steps * batch_size].to(device).split(batch_size)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for v in batches:
            v_model, _ = rbm.negative_phase(v, 1)
            loss = rbm.contrastive_divergence(v, v_model)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(device)
        times.append((time.perf_counter() - start) / len(batches))
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data", help="folder holding MNIST/raw")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 500], help="RBM hidden units to time")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed per loader (median)")
    args = parser.parse_args()
    device, bs = torch.device(args.device), args.batch_size

    what, x = mnist_or_random(args.root)
    on_device = x.to(device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        np.save(path, x.numpy())
        mapped = MappedRows(np.load(path, mmap_mode="r"), np.arange(len(x)))
        loaders = {
            f"in-memory, data on {device.type} (InMemoryLoader)": (InMemoryLoader(on_device, batch_size=bs, shuffle=True), None),
            "in-memory + stochastic binarize": (
                InMemoryLoader(on_device, batch_size=bs, shuffle=True, transform=binarizer("stochastic", 0.5)), None),
            "memory-mapped .npy (MappedLoader)": (MappedLoader(mapped, batch_size=bs, shuffle=True), None),
            "per-sample DataLoader(TensorDataset)": (DataLoader(TensorDataset(x), batch_size=bs, shuffle=True), 100),
        }
        if device.type != "cpu":
            loaders["in-memory, data on cpu, copied per batch"] = (InMemoryLoader(x, batch_size=bs, shuffle=True), None)
        timed = {name: ms_per_batch(loader, device, epochs=args.epochs, max_batches=cap) for name, (loader, cap) in loaders.items()}
    steps = {h: ms_per_cd1_step(x, h, bs, device, steps=50, repeats=3) for h in args.hidden}

    print(f"{what}: {len(x)} x {x.shape[1]}, batch size {bs}, device {device}, torch threads {torch.get_num_threads()}")
    print("RBM CD-1 step: " + ", ".join(f"{ms:.3f} ms (n_hidden={h})" for h, ms in steps.items()))
    header = f"{'loader':<44} {'ms/batch':>9}" + "".join(f" {'% of step h=' + str(h):>16}" for h in steps)
    print(header)
    for name, ms in timed.items():
        print(f"{name:<44} {ms:>9.4f}" + "".join(f" {100 * ms / step:>15.2f}%" for step in steps.values()))


if __name__ == "__main__":
    main()
