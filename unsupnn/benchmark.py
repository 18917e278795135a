"""``unsupnn-benchmark``: throughput of unsupnn's training loops against a bare PyTorch loop and scikit-learn.

    unsupnn-benchmark                                # MNIST from ../shared/data if present, else random data
    unsupnn-benchmark --root ~/data --out benchmark.json --markdown benchmark.md
    unsupnn-benchmark --device cuda --batch 1000     # on a GPU: data resident on the device
    unsupnn-benchmark --n 2000 --hidden 32 --repeats 1 --no-memory   # a smoke run (seconds)

One run, every figure side by side, in samples per second of one training epoch:

- RBM 784 -> hidden at batch ``--batch``, CD-1, PCD-1 and CD-10: (a) the unsupnn path (``LitRBM`` in a
  Lightning ``Trainer`` configured like ``configs/trainer/default.yaml``), the same with the
  ``StopOnDivergence`` check that ``unsupnn-train`` adds to every run, (b) a bare PyTorch loop doing the same
  update on the same tensors, (c) scikit-learn's ``BernoulliRBM`` (PCD-1 with ``batch`` chains, one
  iteration) at the same batch size, hidden units and learning rate. The unsupnn path runs as configured by
  default: 10 mini-batches (10 updates) per Lightning step (``model.batches_per_step``); one more row shows
  CD-1 with one batch per step, against a bare loop of its own.
- Autoencoder 784 -> hidden -> 784 (sigmoid, binary cross-entropy, Adam) and its denoising variant
  (masking noise 0.25): ``LitAutoencoder`` through the same Trainer against a bare loop with the same
  layers, loss and optimizer.
- The throughput of a plain (batch x 784) x (784 x hidden) matrix product, so that every figure is also
  a fraction of what the machine can do: each row counts the matrix products its update needs.
- Lightning's loop alone: a module whose step is one scalar product, through the same Trainer and loader,
  in milliseconds per step: the part of every unsupnn step that no matrix product pays for.
- The peak resident memory (VmHWM) of ``unsupnn-train`` on MNIST 784 -> hidden for one epoch, measured
  in a child process.

Each loop is timed ``--repeats`` times, the loops interleaved (a, b, c, a, b, c, ...) so that a change in
the machine's load hits all of them alike; the table shows the best time of each (the JSON keeps every
time). Prints a markdown table, writes it with ``--markdown`` and everything as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unsupnn.lit.common import compiled

N_VISIBLE = 784
SEED = 0
RBM_LR, AE_LR, MOMENTUM, MASK_LEVEL = 0.05, 1e-3, 0.9, 0.25
RECON_EVERY = 10  # PCD's reconstruction metric, as LitRBM makes it: every trainer.log_every_n_steps steps
# (name, k, persistent): the RBM rows
RBM_LOOPS = (("CD-1", 1, False), ("PCD-1", 1, True), ("CD-10", 10, False))
AE_LOOPS = (("AE", False), ("DAE (mask 0.25)", True))
LIGHTNING_ROW = "Lightning's loop alone"
ONE_BATCH_ROW = "RBM CD-1, one batch per Lightning step"


def default_root() -> Path:
    """../shared/data next to the repository (this project's machines keep MNIST there)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def mnist_present(root: Path | None) -> bool:
    return root is not None and (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def load_data(root: Path | None, n: int) -> tuple[torch.Tensor, str]:
    """``n`` MNIST training images as float32 rows in [0, 1], else random binary rows of that shape."""
    if mnist_present(root):
        from torchvision.datasets import MNIST

        x = MNIST(str(root), train=True, download=False).data[:n].reshape(-1, N_VISIBLE).float() / 255.0
        return x.contiguous(), f"MNIST ({root}), first {len(x)} training images"
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((n, N_VISIBLE), 0.13), generator=g), "random binary (MNIST not found)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_flops(batch: int, n_hidden: int, device: torch.device, seconds: float = 0.3) -> float:
    """FLOP/s of the float32 product a step is made of, (batch x 784) @ (784 x hidden), best of 5 rounds."""
    a = torch.rand(batch, N_VISIBLE, device=device)
    w = torch.rand(n_hidden, N_VISIBLE, device=device)
    out = torch.empty(batch, n_hidden, device=device)
    for _ in range(10):
        torch.mm(a, w.t(), out=out)
    sync(device)
    t0 = time.perf_counter()
    reps = 0
    while time.perf_counter() - t0 < seconds / 5 or reps < 10:
        torch.mm(a, w.t(), out=out)
        reps += 1
        if reps % 10 == 0:
            sync(device)
    best = float("inf")
    for _ in range(5):
        best = min(best, timed(lambda: [torch.mm(a, w.t(), out=out) for _ in range(reps)], device))
    return 2 * batch * N_VISIBLE * n_hidden * reps / best


# --- the bare loops: the same updates written out by hand ---------------------------------------------------


def bare_rbm_epoch(x: torch.Tensor, *, n_hidden: int, batch: int, k: int, persistent: bool, compile: bool | str = False) -> float:
    """CD-k / PCD-k as a textbook loop: SGD with momentum 0.9, the update in closed form.

    The same work as unsupnn's step (unsupnn.nn.rbm.RBM.cd_step), nothing more: the data's hidden
    probabilities serve the first Gibbs step and the positive statistics, 2k + 3 matrix products (PCD: one
    more, the data's reconstruction, every RECON_EVERY steps as LitRBM makes it), the same initial parameters, the same sampling kernel (a uniform draw
    compared with p), the same guards against denormal numbers, the same optimizer (torch.optim.SGD, fused,
    momentum 0.9), the same epoch shuffle (one gather, then slices), and the same two epoch metrics unsupnn
    logs, summed on the device: the objective mean F(v_data) - mean F(v_model) and the one-step
    reconstruction error.
    """
    device = x.device
    torch.manual_seed(SEED)  # the initial parameters of unsupnn_rbm: W ~ N(0, 0.01^2), c = 0, b = logit(mean)
    W = (torch.randn(n_hidden, N_VISIBLE) * 0.01).to(device)
    b = torch.logit(x.mean(0).clamp(1e-3, 1 - 1e-3))
    c = torch.zeros(n_hidden, device=device)
    opt = torch.optim.SGD([W, b, c], lr=RBM_LR, momentum=MOMENTUM, fused=True)  # as unsupnn builds it
    chains = [(torch.rand(batch, N_VISIBLE, device=device) < x[:batch]).float()] if persistent else None
    sums = torch.zeros(2, device=device)  # objective and reconstruction error, summed over the epoch
    # As unsupnn.nn.rbm does: no denormal numbers in the gradient products (flush_tiny_; they cost nothing in
    # accuracy and 10-100x in speed on a CPU), softplus as max(x, 0) - log sigmoid(|x|) (nn.rbm.softplus).
    tiny = torch.finfo(torch.float32).tiny * 2.0**24

    def sample(p: torch.Tensor) -> torch.Tensor:
        u = torch.rand_like(p)
        return torch.lt(u, p, out=u)

    def free_energy(v: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return -(v @ b) - (F.relu(pre) - torch.sigmoid(pre.abs()).log_()).sum(-1)

    def step(v0: torch.Tensor, chain: torch.Tensor | None, reconstruct: bool) -> torch.Tensor:
        pre0 = F.linear(v0, W, c)
        h0 = torch.sigmoid(pre0)
        if chain is None:
            recon = torch.sigmoid(F.linear(sample(h0), W.t(), b))
            v, steps = sample(recon), k - 1
        else:
            v, steps = chain, k
        for _ in range(steps):
            v = sample(torch.sigmoid(F.linear(sample(torch.sigmoid(F.linear(v, W, c))), W.t(), b)))
        if chain is not None and reconstruct:
            recon = torch.sigmoid(F.linear(sample(h0), W.t(), b))
        prek = F.linear(v, W, c)
        hk = torch.sigmoid(prek)
        n_d, n_m = len(v0), len(v)
        objective = free_energy(v0, pre0).mean() - free_energy(v, prek).mean()
        sums[0].add_(objective, alpha=n_d)
        if reconstruct:
            sums[1].add_(F.mse_loss(recon, v0), alpha=n_d)
        hd, hm = F.threshold_(h0 / n_d, tiny, 0.0), F.threshold_(hk / n_m, tiny, 0.0)
        # the gradient of the objective: -(<h v>_data - <h v>_model)
        W.grad = torch.addmm(hm.t() @ v, hd.t(), v0, alpha=-1)
        b.grad, c.grad = v.mean(0) - v0.mean(0), hm.sum(0) - hd.sum(0)
        opt.step()
        return v

    step = compiled(step, compile)

    def run() -> None:
        xs = x[torch.randperm(len(x), device=device)]
        for n, i in enumerate(range(0, len(xs) - batch + 1, batch)):
            v = step(xs[i : i + batch], chains[0] if chains else None, not persistent or n % RECON_EVERY == 0)
            if chains:
                chains[0] = v

    return timed(run, device)


class BareAutoencoder(nn.Module):
    def __init__(self, n_hidden: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(N_VISIBLE, n_hidden), nn.Sigmoid())
        self.decoder = nn.Linear(n_hidden, N_VISIBLE)  # logits: the loss applies the sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def bare_ae_epoch(x: torch.Tensor, *, n_hidden: int, batch: int, denoising: bool, compile: bool | str = False) -> float:
    """The autoencoder as a textbook loop: Adam, binary cross-entropy summed over pixels and averaged over
    the batch, masking noise drawn afresh each step (as unsupnn.nn.noise.corrupt draws it), and the epoch
    metrics unsupnn logs (loss, squared reconstruction error, mean code) summed on the device."""
    device = x.device
    torch.manual_seed(SEED)  # the initial parameters of unsupnn_ae (the same layers, built in the same order)
    model = BareAutoencoder(n_hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=AE_LR, fused=True)  # as unsupnn builds it
    sums = torch.zeros(3, device=device)

    def objective(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_in = xb * (torch.rand_like(xb) >= MASK_LEVEL) if denoising else xb
        code = model.encoder(x_in)
        logits = model.decoder(code)
        return F.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(-1).mean(), code, logits

    objective = compiled(objective, compile)

    def run() -> None:
        xs = x[torch.randperm(len(x), device=device)]
        for i in range(0, len(xs) - batch + 1, batch):
            xb = xs[i : i + batch]
            loss, code, logits = objective(xb)
            with torch.no_grad():
                sums.add_(torch.stack([loss, F.mse_loss(torch.sigmoid(logits), xb), code.mean()]), alpha=len(xb))
            opt.zero_grad()
            loss.backward()
            opt.step()

    return timed(run, device)


# --- the unsupnn path -------------------------------------------------------------------------------------


def _trainer(device: torch.device, *, divergence_check: bool):
    """A Trainer built from configs/trainer/default.yaml, as unsupnn-train builds it, for one epoch of
    training: no validation, logger, checkpoint or progress bar (per-epoch costs the bare loop has none of)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from unsupnn.cli import config_dir
    from unsupnn.divergence import StopOnDivergence

    cfg = OmegaConf.load(config_dir() / "trainer" / "default.yaml")
    cfg.default_root_dir = tempfile.gettempdir()
    return instantiate(
        cfg,
        max_epochs=1,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[StopOnDivergence()] if divergence_check else [],
    )


def _datamodule(x: torch.Tensor, batch: int, **options):
    from unsupnn.data import ArrayDataModule

    class Data(ArrayDataModule):
        def load_arrays(self):
            return x.cpu().numpy(), None

    dm = Data(batch_size=batch, val_fraction=0.0, test_fraction=0.0, on_device=x.device.type == "cuda", **options)
    dm.setup()
    return dm


def unsupnn_epoch(model: torch.nn.Module, x: torch.Tensor, *, batch: int, divergence_check: bool = False) -> float:
    dm = _datamodule(x, batch)
    trainer = _trainer(x.device, divergence_check=divergence_check)
    return timed(lambda: trainer.fit(model, datamodule=dm), x.device)


def unsupnn_rbm(*, n_hidden: int, batch: int, k: int, persistent: bool, compile: bool | str = False, **options):
    from unsupnn.lit.rbm import LitRBM

    torch.manual_seed(SEED)
    return LitRBM(n_features=N_VISIBLE, n_hidden=n_hidden, k=k, persistent=persistent, n_chains=batch, lr=RBM_LR,
                  compile=compile, **options)


def unsupnn_ae(*, n_hidden: int, denoising: bool, compile: bool | str = False):
    from unsupnn.lit.autoencoder import LitAutoencoder

    noise = {"corruption": "mask", "corruption_level": MASK_LEVEL} if denoising else {}
    torch.manual_seed(SEED)
    return LitAutoencoder(n_features=N_VISIBLE, hidden_dims=[n_hidden], lr=AE_LR, compile=compile, **noise)


def null_module():
    """A LightningModule whose step is one scalar product and its fused SGD update: what is left of an epoch
    through the same Trainer and loader is Lightning's loop itself (hooks, closure, batch fetching)."""
    import pytorch_lightning as pl

    from unsupnn.lit.common import LeanHooks

    class Null(LeanHooks, pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def training_step(self, batch, batch_idx):
            return self.w * 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=RBM_LR, momentum=MOMENTUM, fused=True)

    return Null()


def sklearn_rbm_epoch(x: torch.Tensor, *, n_hidden: int, batch: int, threads: int) -> float:
    """scikit-learn's BernoulliRBM, one iteration (PCD-1, ``batch`` chains) on the same float32 rows, its
    BLAS held to the same number of threads as torch."""
    from sklearn.neural_network import BernoulliRBM
    from threadpoolctl import threadpool_limits

    data = x.cpu().numpy()
    rbm = BernoulliRBM(n_components=n_hidden, batch_size=batch, n_iter=1, learning_rate=RBM_LR, random_state=0)
    with threadpool_limits(limits=threads, user_api="blas"):
        start = time.perf_counter()
        rbm.fit(data)
        return time.perf_counter() - start


# --- peak memory ------------------------------------------------------------------------------------------


# The child reports its own peak: VmHWM belongs to the process's address space, which exec starts afresh. The
# parent's ru_maxrss of the child (os.wait4) would not do: Linux carries the forked copy of this process, with
# every benchmark tensor in it, into that figure across the exec.
_REPORT_PEAK = """
import atexit, sys
def _report(path=sys.argv.pop(1)):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(_report)
from unsupnn.cli import train_main
train_main()
"""


def peak_memory(root: Path | None, n_hidden: int, batch: int, workdir: Path, n_random: int = 60_000) -> dict:
    """Peak resident memory (VmHWM) of ``unsupnn-train`` (RBM 784 -> n_hidden, one epoch, no monitoring
    callbacks) in a child process: on MNIST when it is present, else on an MNIST-sized random binary .npy."""
    run_dir = workdir / "memory_run"
    if mnist_present(root):
        data = ["data=mnist", f"data.root={root}"]
        what = "MNIST (60000 training images, 784 features)"
    else:
        path = workdir / "random_mnist_shape.npy"
        np.save(path, (np.random.default_rng(0).random((n_random, N_VISIBLE)) < 0.13).astype(np.float32))
        data = ["data=npy", f"data.path={path}"]
        what = f"random binary .npy ({n_random} x {N_VISIBLE} float32; MNIST not found)"
    report = workdir / "peak_kib"
    overrides = [*data, f"model.n_hidden={n_hidden}", f"data.batch_size={batch}", "trainer.max_epochs=1",
                 "callbacks=none", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _REPORT_PEAK, str(report), *overrides], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    seconds = time.perf_counter() - start
    command = "unsupnn-train " + " ".join(overrides)
    if proc.returncode != 0 or not report.is_file():
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return {"command": command, "data": what, "error": err[-1:] or ["no peak reported (needs /proc)"]}
    rss = int(report.read_text()) * 1024
    return {"command": command, "data": what, "max_rss_mb": round(rss / 2**20, 1), "seconds": round(seconds, 1)}


# --- the run ----------------------------------------------------------------------------------------------


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": str(device)}
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="unsupnn-benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=default_root(), help="folder holding MNIST/raw (torchvision layout)")
    parser.add_argument("--n", "--examples", dest="n", type=int, default=60_000, help="training examples per epoch")
    parser.add_argument("--hidden", type=int, default=500, help="hidden units (RBM) / code width (autoencoders)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timings of each loop, interleaved; the best is shown")
    parser.add_argument("--threads", type=int, default=None, help="torch (and scikit-learn BLAS) threads; default: torch's")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (data resident on the device)")
    parser.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                        help="torch.compile the training step of both the unsupnn and the bare loops (default backend: inductor)")
    parser.add_argument("--loops", default="rbm,ae,sklearn,lightning",
                        help="comma-separated subset of rbm, ae, sklearn, lightning (the Trainer loop with a one-scalar module)")
    parser.add_argument("--no-divergence-check", action="store_true", help="skip the unsupnn + StopOnDivergence column")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory run of unsupnn-train")
    parser.add_argument("--out", type=Path, default=Path("benchmark.json"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def run(args: argparse.Namespace) -> dict:
    warnings.filterwarnings("ignore")
    import pytorch_lightning  # noqa: F401  (sets its loggers' levels on import: quieten them after it)

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("unsupnn-benchmark: error: --device cuda but no GPU is available; use --device cpu")
    loops = set(args.loops.split(","))
    compile = args.compile or False
    info = machine(device)

    x_cpu, source = load_data(args.root, args.n)
    x = x_cpu.to(device)
    n, batch, hidden = len(x), args.batch, args.hidden
    n_steps = n // batch
    flops = matmul_flops(batch, hidden, device)
    product = 2 * batch * N_VISIBLE * hidden  # FLOPs of one (batch x 784) x (784 x hidden) product

    # Every measured loop: (row, column, products per step, fn -> seconds)
    jobs: list[tuple[str, str, int, Callable[[torch.Tensor], float]]] = []
    if "rbm" in loops:
        for name, k, persistent in RBM_LOOPS:
            row = f"RBM {name}"
            # 2 products per Gibbs step, h(v_model), 2 for the update; PCD also the data's h, and its
            # reconstruction every RECON_EVERY steps
            products = 2 * k + 3 + (1 + 1 / RECON_EVERY if persistent else 0)
            kw = dict(n_hidden=hidden, batch=batch, k=k, persistent=persistent)
            jobs.append((row, "bare", products, lambda x, kw=kw: bare_rbm_epoch(x, compile=compile, **kw)))
            jobs.append((row, "unsupnn", products, lambda x, kw=kw: unsupnn_epoch(unsupnn_rbm(compile=compile, **kw), x, batch=batch)))
            if not args.no_divergence_check:
                jobs.append((row, "unsupnn_divcheck", products, lambda x, kw=kw: unsupnn_epoch(
                    unsupnn_rbm(compile=compile, **kw), x, batch=batch, divergence_check=True)))
        # What the default of several batches per Lightning step (LitRBM's batches_per_step) is worth: CD-1
        # with one update per step, against a bare loop of its own.
        kw = dict(n_hidden=hidden, batch=batch, k=1, persistent=False)
        jobs.append((ONE_BATCH_ROW, "bare", 5, lambda x, kw=kw: bare_rbm_epoch(x, compile=compile, **kw)))
        jobs.append((ONE_BATCH_ROW, "unsupnn", 5, lambda x, kw=kw: unsupnn_epoch(
            unsupnn_rbm(compile=compile, batches_per_step=1, **kw), x, batch=batch)))
    if "lightning" in loops:
        jobs.append((LIGHTNING_ROW, "unsupnn", 0, lambda x: unsupnn_epoch(null_module(), x, batch=batch)))
    if "sklearn" in loops:
        jobs.append(("scikit-learn BernoulliRBM (PCD-1)", "sklearn", 5,
                     lambda x: sklearn_rbm_epoch(x, n_hidden=hidden, batch=batch, threads=torch.get_num_threads())))
    if "ae" in loops:
        for name, denoising in AE_LOOPS:
            row = f"{name} 784-{hidden}-784"
            kw = dict(n_hidden=hidden, denoising=denoising)
            # forward: encoder and decoder; backward: the decoder's two gradients and the encoder's weight gradient
            jobs.append((row, "bare", 5, lambda x, kw=kw: bare_ae_epoch(x, batch=batch, compile=compile, **kw)))
            jobs.append((row, "unsupnn", 5, lambda x, kw=kw: unsupnn_epoch(unsupnn_ae(compile=compile, **kw), x, batch=batch)))
            if not args.no_divergence_check:
                jobs.append((row, "unsupnn_divcheck", 5, lambda x, kw=kw: unsupnn_epoch(
                    unsupnn_ae(compile=compile, **kw), x, batch=batch, divergence_check=True)))

    # Warm-up: every loop once on a few batches (first-call costs, lazy initialisation, compilation).
    warm = x[: min(len(x), 5 * batch)]
    for *_, fn in jobs:
        fn(warm)
    times: dict[tuple[str, str], list[float]] = {(r, c): [] for r, c, _, _ in jobs}
    for rep in range(args.repeats):
        order = jobs if rep % 2 == 0 else jobs[::-1]  # a, b, c, ... then ..., c, b, a: drift hits all alike
        for row, column, _, fn in order:
            times[(row, column)].append(fn(x))

    rows: dict[str, dict] = {}
    for row, column, products, _ in jobs:
        t = times[(row, column)]
        best = min(t)
        entry = rows.setdefault(row, {"loop": row})
        entry[column] = {
            "samples_per_s": round(n / best, 1),
            "seconds_best": round(best, 4),
            "seconds_median": round(statistics.median(t), 4),
            "seconds_all": [round(s, 4) for s in t],
            "matmuls_per_step": products,
            "fraction_of_matmul_peak": round(n_steps * products * product / flops / best, 3),
        }
    for entry in rows.values():
        if "unsupnn" in entry and "bare" in entry:
            entry["unsupnn_vs_bare"] = round(entry["unsupnn"]["samples_per_s"] / entry["bare"]["samples_per_s"], 3)
            # the same ratio from the median epochs: how far the best-of figure can be trusted on a noisy machine
            entry["unsupnn_vs_bare_median"] = round(entry["bare"]["seconds_median"] / entry["unsupnn"]["seconds_median"], 3)
            # and the median of paired ratios, each unsupnn epoch against the bare epoch run next to it
            # (interleaved, they are adjacent in time), which a change of the machine's load between rounds leaves alone
            pairs = [b / u for b, u in zip(times[(entry["loop"], "bare")], times[(entry["loop"], "unsupnn")])]
            entry["unsupnn_vs_bare_paired"] = round(statistics.median(pairs), 3)
        if "unsupnn_divcheck" in entry and "bare" in entry:
            entry["unsupnn_divcheck_vs_bare"] = round(
                entry["unsupnn_divcheck"]["samples_per_s"] / entry["bare"]["samples_per_s"], 3)
    sk = rows.get("scikit-learn BernoulliRBM (PCD-1)", {}).get("sklearn")
    if sk:
        for name in ("RBM CD-1", "RBM PCD-1"):
            if name in rows:
                rows[name]["unsupnn_vs_sklearn"] = round(rows[name]["unsupnn"]["samples_per_s"] / sk["samples_per_s"], 3)

    result = {
        "command": "unsupnn-benchmark " + " ".join(args.argv),
        "data": source,
        "examples": n,
        "batch": batch,
        "hidden": hidden,
        "repeats": args.repeats,
        "compile": compile,
        "machine": info,
        "matmul_gflops": round(flops / 1e9, 2),
        "rows": list(rows.values()),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    if not args.no_memory:
        with tempfile.TemporaryDirectory(prefix="unsupnn-bench-") as tmp:
            result["peak_memory"] = peak_memory(args.root, hidden, batch, Path(tmp))
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    load = m.get("load_average_start")
    lines = [
        f"Data: {result['data']}; batch {result['batch']}; 784 -> {result['hidden']}; "
        f"best of {result['repeats']} interleaved epochs{'; torch.compile ' + str(result['compile']) if result['compile'] else ''}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['threads']} threads, device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
        + (f"; load average {load[0]:.2f} at the start, {m['load_average_end'][0]:.2f} at the end" if load else "") + ".",
        f"Matrix product (batch x 784) x (784 x {result['hidden']}), float32: {result['matmul_gflops']:.1f} GFLOP/s.",
        "",
        "| loop | unsupnn samples/s | bare loop samples/s | unsupnn / bare | with divergence check | / bare "
        "| scikit-learn samples/s | unsupnn / scikit-learn | unsupnn, fraction of matmul peak | bare, fraction |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(entry: dict, column: str, key: str = "samples_per_s", fmt: str = "{:.0f}") -> str:
        return fmt.format(entry[column][key]) if column in entry else ""

    def ratio(entry: dict, key: str) -> str:
        return f"{entry[key]:.2f}x" if key in entry else ""

    for e in result["rows"]:
        if e["loop"] == LIGHTNING_ROW:
            continue  # a line of its own, below the table
        if "sklearn" in e:
            lines.append(f"| {e['loop']} | | | | | | {cell(e, 'sklearn')} | | | "
                         f"{cell(e, 'sklearn', 'fraction_of_matmul_peak', '{:.2f}')} |")
            continue
        lines.append(
            f"| {e['loop']} | {cell(e, 'unsupnn')} | {cell(e, 'bare')} | {ratio(e, 'unsupnn_vs_bare')} "
            f"| {cell(e, 'unsupnn_divcheck')} | {ratio(e, 'unsupnn_divcheck_vs_bare')} "
            f"| | {ratio(e, 'unsupnn_vs_sklearn')} "
            f"| {cell(e, 'unsupnn', 'fraction_of_matmul_peak', '{:.2f}')} | {cell(e, 'bare', 'fraction_of_matmul_peak', '{:.2f}')} |"
        )
    medians = [f"{e['loop']} {e['unsupnn_vs_bare_median']:.2f}x" for e in result["rows"] if "unsupnn_vs_bare_median" in e]
    if medians:
        lines += ["", "unsupnn / bare from the median epochs instead of the best: " + ", ".join(medians) + "."]
    paired = [f"{e['loop']} {e['unsupnn_vs_bare_paired']:.2f}x" for e in result["rows"] if "unsupnn_vs_bare_paired" in e]
    if paired:
        lines += ["", "unsupnn / bare as the median of paired epochs (each unsupnn epoch against the bare one run next "
                      "to it): " + ", ".join(paired) + "."]
    def ms_per_step(entry: dict) -> float:
        return entry["unsupnn"]["seconds_best"] / (result["examples"] // result["batch"]) * 1e3

    null = next((e for e in result["rows"] if e["loop"] == LIGHTNING_ROW), None)
    if null:
        cd1 = next((e for e in result["rows"] if e["loop"] == "RBM CD-1" and "unsupnn" in e), None)
        share = f", {ms_per_step(null) / ms_per_step(cd1):.0%} of an unsupnn CD-1 step" if cd1 else ""
        lines += ["", f"{LIGHTNING_ROW} (a module with one scalar parameter, the same Trainer and loader): "
                      f"{ms_per_step(null):.3f} ms per step{share}."]
    mem = result.get("peak_memory")
    if mem:
        lines.append("")
        if "max_rss_mb" in mem:
            lines.append(f"Peak memory (peak resident set, VmHWM) of `{mem['command']}` on {mem['data']}: "
                         f"{mem['max_rss_mb']:.0f} MB ({mem['seconds']:.0f} s).")
        else:
            lines.append(f"Peak memory run failed: `{mem['command']}`: {mem['error']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    table = markdown(result)
    print("\n" + table)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {args.out}")
    if args.markdown:
        args.markdown.write_text(table)
        print(f"markdown: {args.markdown}")


if __name__ == "__main__":
    main()
