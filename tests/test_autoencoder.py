"""Autoencoders trained for real (Lightning Trainer, composed configs) against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sklearn.decomposition import PCA

from conftest import make_cfg

import unsupnn
from unsupnn import tasks
from unsupnn.data import ArrayDataModule
from unsupnn.lit.autoencoder import LitAutoencoder
from unsupnn.nn.noise import corrupt

QUIET = ["logger=none", "+trainer.enable_progress_bar=false"]


def train(overrides: list[str], tmp_path, datamodule=None) -> dict:
    return tasks.train(make_cfg("train", [*QUIET, *overrides], tmp_path), datamodule=datamodule)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.mean((a - b) ** 2))


def test_linear_autoencoder_matches_pca_on_digits(tmp_path):
    # k = 10: the digits spectrum has a clear gap after the 10th component, so the subspace is well defined.
    k = 10
    out = train(["model=ae", f"model.hidden_dims=[{k}]", "model.activation=identity", "model.loss=mse"], tmp_path)
    dm, lit = out["datamodule"], out["model"]
    pca = PCA(n_components=k).fit(dm.x_train.numpy())
    x_val = dm.x_val.numpy()
    pca_error = float(np.mean((pca.inverse_transform(pca.transform(x_val)) - x_val) ** 2))
    with torch.no_grad():
        ae_error = mse(lit.autoencoder(dm.x_val), dm.x_val)
    print(f"linear AE k={k}: validation MSE {ae_error:.5f}, PCA {pca_error:.5f}, ratio {ae_error / pca_error:.4f}")
    # Within 5% of PCA, and no better than PCA can allow: a k-dimensional linear code cannot do much better.
    assert 0.95 < ae_error / pca_error < 1.05
    assert out["summary"]["metrics"]["val/recon"] == pytest.approx(ae_error, rel=1e-4)  # the logged metric is this MSE


@pytest.mark.parametrize("kind,level", [("mask", 0.25), ("gaussian", 0.3), ("salt_pepper", 0.2)])
def test_denoising_autoencoder_removes_corruption_from_digits(kind, level, tmp_path):
    out = train(["model=dae", f"model.corruption={kind}", f"model.corruption_level={level}", "trainer.max_epochs=5"], tmp_path)
    dm, ae = out["datamodule"], out["model"].autoencoder
    clean = dm.x_val
    noisy = corrupt(clean, kind, level, torch.Generator().manual_seed(123))
    with torch.no_grad():
        denoised = ae(noisy)
    noisy_error, denoised_error = mse(noisy, clean), mse(denoised, clean)
    print(f"dae {kind} {level}: corrupted input MSE {noisy_error:.4f}, reconstruction MSE {denoised_error:.4f}")
    assert denoised_error < 0.6 * noisy_error
    assert torch.equal(unsupnn.load_encoder(out["summary"]["encoder"])(clean), out["model"](clean))  # as exported
    assert out["summary"]["metrics"]["val/denoise"] < 0.6 * noisy_error


@pytest.mark.parametrize("rho", [0.05, 0.2])
def test_sparse_autoencoder_code_activation_reaches_rho(rho, tmp_path):
    # Two targets far apart: the penalty, not the architecture, decides where the code ends up.
    out = train(["model=sparse_ae", f"model.rho={rho}", "trainer.max_epochs=6"], tmp_path)
    with torch.no_grad():
        code_mean = float(out["model"](out["datamodule"].x_val).mean())
    print(f"sparse AE rho={rho}: mean code activation {code_mean:.4f}")
    assert abs(code_mean - rho) < 0.05
    assert abs(out["summary"]["metrics"]["train/code_mean"] - rho) < 0.05


class FiveColumns(ArrayDataModule):
    """Five correlated columns driven by four latent factors: the issue's 5 -> 4 -> 5 example."""

    def __init__(self, *, scale: float = 1.0, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def load_arrays(self):
        rng = np.random.default_rng(0)
        latent, mixing = rng.normal(size=(600, 4)), rng.normal(size=(4, 5))
        return self.offset + self.scale / (1 + np.exp(-latent @ mixing)), None


def five_columns(**kwargs) -> FiveColumns:
    dm = FiveColumns(**kwargs)
    dm.setup()
    return dm


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_five_features_encoded_to_four_and_decoded_back(loss, tmp_path):
    # bce for data in [0, 1]; mse for the same columns on another scale.
    dm = five_columns() if loss == "bce" else five_columns(scale=10.0, offset=-3.0)
    out = train(["model=ae", "model.hidden_dims=[4]", f"model.loss={loss}", "trainer.max_epochs=60"], tmp_path, datamodule=dm)
    encoder = unsupnn.load_encoder(out["summary"]["encoder"])
    assert (encoder.in_features, encoder.out_features) == (5, 4)
    with torch.no_grad():
        recon = out["model"].autoencoder(dm.x_val)
    assert recon.shape == dm.x_val.shape
    # Far better than predicting each column's mean: four units carry the five correlated columns.
    assert mse(recon, dm.x_val) < 0.2 * float(dm.x_val.var(0).mean())


def test_binary_cross_entropy_refuses_data_outside_the_unit_interval(tmp_path):
    dm = five_columns(scale=10.0, offset=-3.0)
    with pytest.raises(ValueError, match=r"model.loss=bce .* needs \[0, 1\].*model.loss=mse"):
        train(["model=ae", "model.hidden_dims=[4]"], tmp_path, datamodule=dm)
    assert not (tmp_path / "encoder.safetensors").exists()
