"""Every autoencoder preset through the real `unsupnn-pretrain`: results, encoder files, TensorBoard logs."""

from __future__ import annotations

import json

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli

from unsupnn.io import load_encoder
from unsupnn.lit.autoencoder import LitAutoencoder

PRESETS = {  # preset -> its own scalars besides the common ones, and the rows of its image grid
    "ae": (set(), 2),
    "sparse_ae": ({"train/sparsity"}, 2),
    "contractive_ae": ({"train/contractive"}, 2),
    "dae": ({"val/denoise"}, 3),
}
COMMON = {"train/loss", "train/recon_loss", "train/recon", "train/code_mean", "val/recon_loss", "val/recon", "val/code_mean"}


def test_every_preset_pretrains_from_the_command_line_and_exports_its_encoder(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["unsupnn-pretrain", "-m", f"model={','.join(PRESETS)}", "trainer.max_epochs=2",
                    "classifier.max_epochs=1", "callbacks.reconstructions.every_n_epochs=1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {json.loads((d / "results.json").read_text())["pretrain"]["model"]: d for d in sweep.glob("*/")
            if (d / "results.json").is_file()}
    assert sorted(runs) == sorted(PRESETS)

    x = torch.rand(50, 64, generator=torch.Generator().manual_seed(0))
    for preset, run_dir in runs.items():
        results = json.loads((run_dir / "results.json").read_text())
        assert [r["method"] for r in results["rows"]] == ["probe", "finetune", "scratch", "raw_logistic"]
        assert results["pretrain"]["metrics"]["val/recon"] < 0.1  # digits' pixel variance is ~0.1

        # The model as training left it, rebuilt from its checkpoint (plain values only), gives exactly
        # the features of the exported file and of the checkpoint read as an encoder.
        ckpt = torch.load(run_dir / "checkpoints" / "pretrain" / "last.ckpt", weights_only=True)
        lit = LitAutoencoder(**ckpt["hyper_parameters"])
        lit.load_state_dict(ckpt["state_dict"])
        exported = load_encoder(run_dir / "encoder.safetensors")
        assert (exported.in_features, exported.out_features) == (64, lit.hparams.hidden_dims[-1])
        assert torch.equal(exported(x), lit(x)), preset
        assert torch.equal(load_encoder(run_dir / "checkpoints" / "pretrain" / "last.ckpt")(x), lit(x)), preset

        events = EventAccumulator(str(run_dir / "tensorboard" / "pretrain"), size_guidance={"images": 0})
        events.Reload()
        own, rows = PRESETS[preset]
        assert COMMON | own <= set(events.Tags()["scalars"]), preset
        grids = events.Images("val/reconstructions")
        assert len(grids) == 2  # one a validation epoch
        # 16 examples of 8x8 pixels a row with 1-pixel padding: input | (corrupted |) reconstruction.
        assert (grids[-1].width, grids[-1].height) == (16 * 9 + 1, rows * 9 + 1), preset


def test_five_features_encoded_to_four_from_a_csv_file(tmp_path):
    """The seed's own example: five input features to four and back, from tabular data on the command line."""
    rng = torch.Generator().manual_seed(0)
    latent = torch.rand(200, 2, generator=rng)
    table = torch.cat([latent, latent.sum(1, keepdim=True) / 2, latent[:, :1] * 0.5, 1 - latent[:, 1:]], 1)
    csv = tmp_path / "five.csv"
    csv.write_text("a,b,c,d,e\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in table.tolist()))
    run_dir = tmp_path / "run"
    proc = run_cli(["unsupnn-train", "data=csv", f"data.path={csv}", "model=ae", "model.hidden_dims=[4]",
                    "trainer.max_epochs=30", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    encoder = load_encoder(run_dir / "encoder.safetensors")
    assert (encoder.in_features, encoder.out_features) == (5, 4)
    metrics = json.loads((run_dir / "results.json").read_text())["pretrain"]["metrics"]
    assert metrics["val/recon"] < 0.5 * float(table.var(0).mean())  # far better than each column's mean
