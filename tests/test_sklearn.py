"""The scikit-learn front door: estimator checks, BernoulliRBM as the reference, Pipeline / GridSearchCV."""

from __future__ import annotations

import pickle
import runpy

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import REPO

import unsupnn
from unsupnn.nn import RBM, Autoencoder
from unsupnn.sklearn import AutoencoderTransformer, RBMTransformer

# The estimator checks feed standardised data; the RBM warns that it models [0, 1] and carries on.
pytestmark = pytest.mark.filterwarnings("ignore:X has values in .* Bernoulli visible units:UserWarning")

# Checks that cannot pass, by name, with the reason (run as strict xfails: one that starts passing is reported).
STOCHASTIC_SCORE = (
    "score_samples estimates the pseudo-likelihood by flipping one randomly chosen unit per row (as "
    "BernoulliRBM, which scikit-learn marks the same way), so a row's value depends on its place in the batch"
)
EXPECTED_FAILED_CHECKS = {
    "RBMTransformer": {
        "check_methods_subset_invariance": STOCHASTIC_SCORE,
        "check_methods_sample_order_invariance": STOCHASTIC_SCORE,
    },
    "AutoencoderTransformer": {},
}


def digits01() -> np.ndarray:
    return load_digits().data / 16.0


@parametrize_with_checks(
    [
        RBMTransformer(n_components=3, n_iter=2, random_state=0),
        RBMTransformer(n_components=3, n_iter=2, k=2, persistent=True, random_state=0),
        # Denoising keeps a code at least as wide as the checks' 1- and 2-feature data from being refused.
        AutoencoderTransformer(hidden_dims=(2,), corruption="mask", corruption_level=0.1, n_iter=2, random_state=0),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_pipeline_on_the_nudged_digits_protocol_matches_bernoulli_rbm():
    example = runpy.run_path(str(REPO / "examples" / "sklearn_rbm_digits.py"))
    results = example["compare"](seed=0)  # one thread, as the example runs by default
    ours, reference = results["unsupnn RBMTransformer"][0], results["sklearn BernoulliRBM"][0]
    assert ours >= 0.94
    assert reference > 0.93  # the reference really ran the protocol (0.9432 on one thread, 0.9416 on two)
    assert ours >= reference - 0.01


def bernoulli_rbm_with_weights_of(ours: RBMTransformer) -> BernoulliRBM:
    reference = BernoulliRBM(n_components=ours.n_components, random_state=0)
    reference.components_ = ours.components_.astype(np.float64)
    reference.intercept_hidden_ = ours.intercept_hidden_.astype(np.float64)
    reference.intercept_visible_ = ours.intercept_visible_.astype(np.float64)
    reference.n_features_in_ = ours.n_features_in_
    reference.h_samples_ = np.zeros((1, ours.n_components))
    return reference


def test_rbm_methods_agree_with_bernoulli_rbm_on_the_same_weights():
    X = digits01()[:300]
    ours = RBMTransformer(n_components=16, learning_rate=0.05, n_iter=3, random_state=0).fit(X)
    reference = bernoulli_rbm_with_weights_of(ours)
    np.testing.assert_allclose(ours.transform(X), reference.transform(X), rtol=1e-5, atol=1e-6)
    h = ours.transform(X[:50])
    mean_visibles = expit(h @ reference.components_ + reference.intercept_visible_)  # BernoulliRBM._sample_visibles' p
    np.testing.assert_allclose(ours.inverse_transform(h), mean_visibles, rtol=1e-5, atol=1e-6)
    free_energy = ours.model_.free_energy(torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(free_energy, reference._free_energy(X), rtol=1e-6)

    # Stochastic methods: the same distribution, so the same means over many draws of one row.
    many = np.repeat(X[:1], 20000, axis=0)
    ours_pl, reference_pl = ours.score_samples(many).mean(), reference.score_samples(many).mean()
    assert abs(ours_pl - reference_pl) < 0.05 * abs(reference_pl) + 0.05
    np.testing.assert_allclose(ours.gibbs(many).mean(0), reference.gibbs(many).mean(0), atol=0.02)
    assert set(np.unique(ours.gibbs(X[:20], k=3))) <= {0.0, 1.0}


def test_fit_equals_as_many_partial_fits_and_pcd_keeps_its_chains():
    X = digits01()[:200]
    for persistent in (False, True):
        params = dict(n_components=8, n_iter=3, batch_size=16, persistent=persistent, random_state=1)
        fitted = RBMTransformer(**params).fit(X)
        stepped = RBMTransformer(**params)
        for _ in range(3):
            stepped.partial_fit(X)
        np.testing.assert_array_equal(fitted.components_, stepped.components_)
        assert (getattr(fitted, "chains_", None) is not None) is persistent
    ae = dict(hidden_dims=(6,), n_iter=2, random_state=3)
    fitted, stepped = AutoencoderTransformer(**ae).fit(X), AutoencoderTransformer(**ae)
    stepped.partial_fit(X).partial_fit(X)
    np.testing.assert_array_equal(fitted.transform(X), stepped.transform(X))


def test_the_transformers_run_the_plain_models_of_unsupnn_nn():
    X = digits01()[:100]
    rbm = RBMTransformer(n_components=5, n_iter=1, random_state=0).fit(X)
    ae = AutoencoderTransformer(hidden_dims=(10, 4), loss="bce", n_iter=1, random_state=0).fit(X)
    assert type(rbm.model_) is RBM and type(ae.model_) is Autoencoder
    x = torch.tensor(X)
    np.testing.assert_array_equal(rbm.transform(X), rbm.model_.transform(x).detach().numpy())
    np.testing.assert_array_equal(ae.transform(X), ae.model_.encode(x).detach().numpy())
    np.testing.assert_array_equal(ae.inverse_transform(ae.transform(X)), ae.model_(x).detach().numpy())


def test_a_fitted_transformer_exports_an_encoder_for_pytorch(tmp_path):
    X = digits01()[:100].astype(np.float32)
    for transformer in (RBMTransformer(n_components=7, n_iter=1, random_state=0),
                        AutoencoderTransformer(hidden_dims=(12, 7), n_iter=1, random_state=0)):
        with pytest.raises(NotFittedError):
            unsupnn.save_encoder(transformer, tmp_path / "unfitted.safetensors")
        path = unsupnn.save_encoder(transformer.fit(X), tmp_path / "e.safetensors")
        encoder = unsupnn.load_encoder(path)
        np.testing.assert_array_equal(encoder(torch.from_numpy(X)).detach().numpy(), transformer.transform(X))


def test_pickle_clone_pipeline_and_grid_search():
    X, y = digits01()[:300], load_digits().target[:300]
    rbm = RBMTransformer(n_components=10, n_iter=2, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(rbm))
    np.testing.assert_array_equal(again.transform(X), rbm.transform(X))
    np.testing.assert_array_equal(again.partial_fit(X).transform(X), rbm.partial_fit(X).transform(X))
    fresh = clone(rbm)
    assert fresh.get_params() == rbm.get_params() and not hasattr(fresh, "model_")

    pipeline = Pipeline([("ae", AutoencoderTransformer(hidden_dims=(8,), loss="bce", n_iter=3, random_state=0)),
                         ("logistic", LogisticRegression(max_iter=500))])
    search = GridSearchCV(pipeline, {"ae__hidden_dims": [(4,), (16,)], "ae__learning_rate": [1e-2]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["ae__hidden_dims"] in [(4,), (16,)]
    assert search.best_estimator_.named_steps["ae"].transform(X).shape[1] == search.best_params_["ae__hidden_dims"][0]
    assert search.score(X, y) > 0.5
    assert list(search.best_estimator_[:-1].get_feature_names_out())[:2] == ["autoencodertransformer0", "autoencodertransformer1"]


def test_a_linear_autoencoder_approaches_pca():
    # A linear autoencoder's best reconstruction is the projection on the top principal components
    # (Baldi & Hornik, 1989): PCA's error is a floor that training must come close to, never beat.
    X = digits01()
    X = X - X.mean(0)
    pca = PCA(n_components=6).fit(X)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    ae = AutoencoderTransformer(hidden_dims=(6,), activation="identity", loss="mse", learning_rate=2e-2,
                                batch_size=128, n_iter=30, random_state=0).fit(X)
    ae_error = np.mean((ae.inverse_transform(ae.transform(X)) - X) ** 2)
    assert pca_error * (1 - 1e-6) <= ae_error < 1.05 * pca_error


def test_bad_parameters_and_data_get_messages_naming_the_fix():
    X = digits01()[:50]
    for params, message in [(dict(n_components=0), "n_components=0"), (dict(k=0), "k=0"),
                            (dict(learning_rate=-1), "learning_rate=-1"), (dict(device="gpu0"), "device='gpu0'")]:
        with pytest.raises(ValueError, match=message):
            RBMTransformer(**params).fit(X)
    with pytest.warns(UserWarning, match="MinMaxScaler"):
        RBMTransformer(n_components=2, n_iter=1).fit(X * 16)
    with pytest.raises(ValueError, match="loss=mse"):
        AutoencoderTransformer(hidden_dims=(4,), loss="bce").fit(X * 16)
    with pytest.raises(ValueError, match="can learn the identity"):
        AutoencoderTransformer(hidden_dims=(64,)).fit(X)
    rbm = RBMTransformer(n_components=3, n_iter=1).fit(X)
    with pytest.raises(ValueError, match="takes the 3 features"):
        rbm.inverse_transform(np.zeros((2, 4)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_cuda_fits_on_the_gpu_and_matches_the_cpu_closely():
    X = digits01()[:500].astype(np.float32)
    gpu = RBMTransformer(n_components=16, n_iter=2, random_state=0, device="cuda").fit(X)
    assert gpu.model_.W.is_cuda
    features = gpu.transform(X)
    assert features.dtype == np.float32 and features.shape == (500, 16)
    np.testing.assert_allclose(features, gpu.model_.transform(torch.from_numpy(X).cuda()).cpu().numpy(), rtol=1e-6)
