"""The autoencoder's mathematics against independent computations: finite differences, torch.distributions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unsupnn
from unsupnn.io import load_encoder, save_encoder
from unsupnn.lit.autoencoder import LitAutoencoder
from unsupnn.nn.autoencoder import Autoencoder
from unsupnn.nn.noise import corrupt
from unsupnn.nn.penalties import jacobian_penalty, kl_sparsity, l1_sparsity


def random_ae(seed=0, **kwargs) -> Autoencoder:
    torch.manual_seed(seed)
    kwargs = {"n_features": 7, "hidden_dims": [5], "contractive_weight": 0.1, **kwargs}
    ae = Autoencoder(**kwargs).double()
    with torch.no_grad():
        for p in ae.parameters():
            p.copy_(torch.randn_like(p))
    return ae


def finite_difference_jacobian_norm(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean ||df/dx||_F^2 from central differences, one input coordinate at a time."""
    columns = []
    for i in range(x.shape[1]):
        step = torch.zeros_like(x)
        step[:, i] = eps
        columns.append((f(x + step) - f(x - step)) / (2 * eps))
    return torch.stack(columns, -1).pow(2).sum((1, 2)).mean()


ENCODERS = {
    "one sigmoid layer (closed form)": {},
    "two tanh layers (autograd)": {"hidden_dims": [6, 3], "activation": "tanh", "code_activation": "sigmoid"},
    "one softplus layer (autograd)": {"activation": "softplus", "loss": "mse"},
}


@pytest.mark.parametrize("encoder", ENCODERS)
def test_contractive_penalty_equals_finite_differences(encoder):
    ae = random_ae(**ENCODERS[encoder])
    x = torch.rand(6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = finite_difference_jacobian_norm(ae.encode, x)
    assert torch.allclose(ae.contractive_penalty(x), expected, rtol=1e-7)
    assert torch.allclose(ae.objective(x).penalties["contractive"], expected, rtol=1e-7)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_contractive_penalty_gradient_matches_finite_differences(encoder):
    """The penalty trains: its gradient with respect to a weight is the weight's finite-difference slope."""
    ae = random_ae(**ENCODERS[encoder])
    x = torch.rand(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    weight = ae.encoder[0].weight
    ae.contractive_penalty(x).backward()
    eps = 1e-6
    for i, j in [(0, 0), (2, 5), (4, 3)]:
        with torch.no_grad():
            weight[i, j] += eps
            up = ae.contractive_penalty(x)
            weight[i, j] -= 2 * eps
            down = ae.contractive_penalty(x)
            weight[i, j] += eps
        assert torch.allclose(weight.grad[i, j], (up - down) / (2 * eps), rtol=1e-5)


def test_closed_form_and_autograd_agree_on_a_sigmoid_layer():
    ae = random_ae()
    x = torch.rand(5, 7, dtype=torch.float64)
    assert torch.allclose(ae.contractive_penalty(x), jacobian_penalty(ae.encode, x), rtol=1e-10)


def test_sparsity_penalties_match_their_definitions():
    code = torch.rand(9, 4, dtype=torch.float64)
    rho = 0.1
    bernoulli = torch.distributions.Bernoulli
    expected = torch.distributions.kl_divergence(bernoulli(probs=torch.tensor(rho)), bernoulli(probs=code.mean(0))).sum()
    assert torch.allclose(kl_sparsity(code, rho), expected)
    assert kl_sparsity(torch.full((3, 4), rho), rho).abs() < 1e-12  # zero exactly at the target
    assert torch.allclose(l1_sparsity(code - 0.5), (code - 0.5).abs().sum() / 9)


@pytest.mark.parametrize("kind,level", [("mask", 0.3), ("gaussian", 0.2), ("salt_pepper", 0.25)])
def test_corruptions_have_the_stated_statistics_and_never_touch_the_input(kind, level):
    x = torch.rand(400, 50)
    before = x.clone()
    noisy = corrupt(x, kind, level, torch.Generator().manual_seed(0))
    assert torch.equal(x, before) and noisy.shape == x.shape and noisy.dtype == x.dtype
    changed = noisy != x
    if kind == "mask":
        assert (noisy[changed] == 0).all() and abs(float((noisy == 0).float().mean()) - level) < 0.01
    elif kind == "gaussian":
        assert abs(float((noisy - x).std()) - level) < 0.005 and abs(float((noisy - x).mean())) < 0.005
    else:
        assert abs(float(changed.float().mean()) - level) < 0.01
        assert set(noisy[changed].tolist()) <= {0.0, 1.0}
        assert abs(float(noisy[changed].mean()) - 0.5) < 0.03  # salt and pepper equally often
    again = corrupt(x, kind, level)
    assert not torch.equal(again, corrupt(x, kind, level))  # fresh noise every call
    assert torch.equal(noisy, corrupt(x, kind, level, torch.Generator().manual_seed(0)))
    assert corrupt(x, "none", 0.0) is x


def test_bad_corruptions_are_refused():
    with pytest.raises(ValueError, match="one of"):
        corrupt(torch.rand(2, 3), "dropout", 0.1)
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
        Autoencoder(n_features=4, hidden_dims=[8], corruption="mask", corruption_level=1.5)


def test_tied_decoder_is_the_transposed_encoder():
    ae = random_ae(hidden_dims=[5, 3], tied=True)
    names = [n for n, _ in ae.named_parameters()]
    assert not any("decoder_weight" in n for n in names)
    z = torch.rand(4, 3, dtype=torch.float64)
    w1, w2 = ae.encoder[0].weight, ae.encoder[2].weight
    hidden = torch.sigmoid(F.linear(z, w2.t(), ae.decoder_bias[0]))
    assert torch.allclose(ae.decode(z), torch.sigmoid(F.linear(hidden, w1.t(), ae.decoder_bias[1])))
    ae.objective(torch.rand(4, 7, dtype=torch.float64)).loss.backward()
    assert w1.grad.abs().sum() > 0 and ae.decoder_bias[1].grad.abs().sum() > 0


@pytest.mark.parametrize("options", [{"hidden_dims": [6, 3], "tied": True}, {"hidden_dims": [5], "activation": "tanh", "loss": "mse"},
                                     {"hidden_dims": [4], "activation": "identity", "loss": "mse"}])
def test_exported_encoder_is_a_plain_stack_with_identical_outputs(tmp_path, options):
    ae = random_ae(**{"contractive_weight": 0.0, **options}).float()
    encoder = load_encoder(save_encoder(ae, tmp_path / "e.safetensors"))
    assert [type(m).__name__ for m in encoder][0::2] == ["Linear"] * len(options["hidden_dims"])
    x = torch.rand(5, 7)
    assert torch.equal(encoder(x), ae.encode(x))
    lit = LitAutoencoder(n_features=7, **options)
    assert torch.equal(load_encoder(save_encoder(lit, tmp_path / "l.safetensors"))(x), lit(x))


def test_checkpoint_hparams_are_plain_and_rebuild_the_model(tmp_path):
    lit = LitAutoencoder(n_features=7, name="dae", hidden_dims=[9], corruption="gaussian", corruption_level=0.2, tied=True)
    torch.save({"hparams": dict(lit.hparams), "state_dict": lit.autoencoder.state_dict()}, tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    again = Autoencoder.from_config(saved["hparams"])
    again.load_state_dict(saved["state_dict"])
    x = torch.rand(3, 7)
    assert torch.equal(again(x), lit.autoencoder(x)) and again.config == lit.autoencoder.config
    assert lit.model_name == "dae" and "autoencoder" in unsupnn.list_models()
    assert unsupnn.build_model("autoencoder", n_features=7, hidden_dims=[3]).encode(x).shape == (3, 3)


def test_an_overcomplete_autoencoder_with_nothing_to_stop_the_identity_is_refused():
    for dims in ([8], [8, 12], [64, 16]):
        with pytest.raises(ValueError, match="allow_identity=true") as err:
            Autoencoder(n_features=8, hidden_dims=dims)
        assert "model.sparsity=kl" in str(err.value) and "model.corruption=mask" in str(err.value)
    Autoencoder(n_features=8, hidden_dims=[16], allow_identity=True)
    Autoencoder(n_features=8, hidden_dims=[16], sparsity="l1", beta=0.1)
    Autoencoder(n_features=8, hidden_dims=[16], contractive_weight=0.1)
    Autoencoder(n_features=8, hidden_dims=[16], corruption="salt_pepper", corruption_level=0.1)
    with pytest.raises(ValueError, match="allow_identity"):
        Autoencoder(n_features=8, hidden_dims=[16], sparsity="kl", beta=0.0)  # a penalty weighted 0 is none


def test_inputs_and_options_the_loss_cannot_model_are_refused_with_the_fix():
    ae = Autoencoder(n_features=3, hidden_dims=[2])
    with pytest.raises(ValueError, match=r"needs \[0, 1\].*model.loss=mse"):
        ae.check_input(torch.tensor([[0.5, 2.0, -1.0]]), "data=csv")
    with pytest.raises(ValueError, match="3 features but the autoencoder takes 4"):
        Autoencoder(n_features=4, hidden_dims=[2]).check_input(torch.rand(2, 3))
    Autoencoder(n_features=3, hidden_dims=[2], loss="mse").check_input(torch.tensor([[0.5, 2.0, -1.0]]))
    with pytest.raises(ValueError, match="output_activation=sigmoid"):
        Autoencoder(n_features=3, hidden_dims=[2], output_activation="identity")
    with pytest.raises(ValueError, match="sigmoid code"):
        Autoencoder(n_features=3, hidden_dims=[8], activation="relu", sparsity="kl", beta=1.0)
