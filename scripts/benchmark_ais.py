"""AIS test log-likelihood of 500-hidden-unit RBMs trained on MNIST by CD-1 and by PCD-1, beside the
published figures (Salakhutdinov & Murray 2008: CD-1 about -125 nats, CD-25 -86.34).

    python scripts/benchmark_ais.py --root ../shared/data --epochs 20

Training goes through the real pipeline (``unsupnn.tasks.train`` with a composed Hydra config) on
stochastically binarised MNIST; the test set is binarised at 0.5 and scored with log Z from AIS
(14,500 temperatures, 100 runs by default, as in the paper).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from unsupnn import tasks
from unsupnn.cli import config_dir
from unsupnn.nn.ais import ais_log_likelihood, base_rate_bias

PUBLISHED = {"CD-1": "about -125 (CD-1), Salakhutdinov & Murray 2008", "PCD-1": "-86.34 (CD-25), Salakhutdinov & Murray 2008"}


def train_rbm(root: Path, persistent: bool, epochs: int, lr: float, out: Path):
    overrides = [
        "data=mnist", f"data.root={root}", "data.binarize=stochastic", "data.val_fraction=0.0",
        "model.n_hidden=500", f"model.persistent={str(persistent).lower()}", f"model.lr={lr}",
        "model.weight_decay=0.0002", f"trainer.max_epochs={epochs}", "callbacks=none", "logger=none",
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return tasks.train(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--betas", type=int, default=14_500)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmark_ais.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    rows = []
    for name, persistent in (("CD-1", False), ("PCD-1", True)):
        with tempfile.TemporaryDirectory() as tmp:
            out = train_rbm(args.root, persistent, args.epochs, args.lr, Path(tmp))
        dm, rbm = out["datamodule"], out["model"].rbm.cpu()
        start = time.perf_counter()
        ll, result = ais_log_likelihood(
            rbm, (dm.x_test > 0.5).float(), base_bias=base_rate_bias((dm.x_train > 0.5).float()),
            n_runs=args.runs, n_betas=args.betas, generator=torch.Generator().manual_seed(0),
        )
        rows.append({"training": name, "epochs": args.epochs, "test_ll_nats": ll, "log_z": result.log_z,
                     "log_z_spread": [result.log_z_low, result.log_z_high], "train_seconds": out["summary"]["seconds"],
                     "ais_seconds": time.perf_counter() - start, "published": PUBLISHED[name]})
        print(rows[-1], flush=True)

    print(f"\n| training | epochs | AIS test log-likelihood (nats) | log Z (+-3 s.e.) | train s | AIS s | published |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        lo, hi = r["log_z_spread"]
        print(f"| {r['training']} | {r['epochs']} | {r['test_ll_nats']:.2f} | {r['log_z']:.2f} ({lo:.2f}, {hi:.2f}) | "
              f"{r['train_seconds']:.0f} | {r['ais_seconds']:.0f} | {r['published']} |")
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
