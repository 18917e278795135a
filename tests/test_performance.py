"""The performance work: the benchmark runs end to end, the fast paths compute what the plain ones do, the
training step never waits on the host, and the GPU options work (on the CPU). No timing assertions."""

from __future__ import annotations

import json
import logging
import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import unsupnn.benchmark as bench
from unsupnn.data.loader import InMemoryLoader
from unsupnn.divergence import StopOnDivergence
from unsupnn.lit.autoencoder import LitAutoencoder
from unsupnn.lit.common import EpochMeans, build_optimizer
from unsupnn.lit.rbm import LitRBM
from unsupnn.nn.rbm import RBM, bernoulli, softplus

warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

ROWS = ["RBM CD-1", "RBM PCD-1", "RBM CD-10", "RBM CD-1, one batch per Lightning step", "Lightning's loop alone", "scikit-learn BernoulliRBM (PCD-1)", "AE 784-16-784",
        "DAE (mask 0.25) 784-16-784"]


def fit(model, x: torch.Tensor, *, epochs: int = 1, callbacks=(), batch: int = 100, **data):
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=list(callbacks))
    trainer.fit(model, datamodule=bench._datamodule(x, batch, **data))
    return trainer


# --- the benchmark ----------------------------------------------------------------------------------------


def test_benchmark_runs_end_to_end_and_writes_every_row(tmp_path, capsys):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    bench.main(["--root", str(tmp_path), "--n", "300", "--hidden", "16", "--repeats", "2", "--threads", "1",
                "--no-memory", "--out", str(out), "--markdown", str(md)])
    result = json.loads(out.read_text())
    assert result["data"].startswith("random binary") and result["examples"] == 300 and result["hidden"] == 16
    assert result["matmul_gflops"] > 0 and result["machine"]["threads"] == 1
    rows = {r["loop"]: r for r in result["rows"]}
    assert list(rows) == ROWS
    null = rows.pop(bench.LIGHTNING_ROW)["unsupnn"]  # the Trainer loop with a one-scalar module
    assert null["samples_per_s"] > 0 and null["matmuls_per_step"] == 0
    one_batch = rows.pop(bench.ONE_BATCH_ROW)  # LitRBM with batches_per_step=1, against a bare loop of its own
    assert one_batch["unsupnn_vs_bare"] > 0 and "unsupnn_divcheck" not in one_batch
    for name, row in rows.items():
        columns = ["sklearn"] if name.startswith("scikit") else ["bare", "unsupnn", "unsupnn_divcheck"]
        for column in columns:
            cell = row[column]
            assert cell["samples_per_s"] > 0 and len(cell["seconds_all"]) == 2
            assert 0 < cell["fraction_of_matmul_peak"] and cell["matmuls_per_step"] >= 5
        if not name.startswith("scikit"):
            assert row["unsupnn_vs_bare"] > 0 and row["unsupnn_divcheck_vs_bare"] > 0 and row["unsupnn_vs_bare_median"] > 0
            pairs = [b / u for b, u in zip(row["bare"]["seconds_all"], row["unsupnn"]["seconds_all"])]
            assert 0.95 * min(pairs) <= row["unsupnn_vs_bare_paired"] <= 1.05 * max(pairs)  # the median of two (times rounded)
    assert rows["RBM CD-1"]["unsupnn_vs_sklearn"] > 0 and rows["RBM PCD-1"]["unsupnn_vs_sklearn"] > 0
    table = md.read_text()
    assert "| RBM CD-1 |" in table and "unsupnn / bare" in table and table in capsys.readouterr().out
    assert "Lightning's loop alone" in table and "ms per step" in table and "median epochs" in table and "paired" in table


def test_benchmark_memory_run_reports_the_peak_rss(tmp_path):
    mem = bench.peak_memory(None, n_hidden=16, batch=100, workdir=tmp_path, n_random=1000)
    assert "error" not in mem, mem
    assert mem["command"].startswith("unsupnn-train data=npy") and "random binary" in mem["data"]
    assert 50 < mem["max_rss_mb"] < 4000


def test_benchmark_compile_option_runs_on_the_cpu():
    # aot_eager traces the steps with TorchDynamo and AOTAutograd without generating code: the wiring of the
    # GPU option (--compile, default backend inductor), tested in seconds.
    assert bench.parse_args(["--compile"]).compile == "inductor"
    assert bench.parse_args(["--compile", "aot_eager"]).compile == "aot_eager" and bench.parse_args([]).compile is None
    x, _ = bench.load_data(None, 200)
    assert bench.bare_rbm_epoch(x, n_hidden=8, batch=100, k=2, persistent=True, compile="aot_eager") > 0
    assert bench.bare_ae_epoch(x, n_hidden=8, batch=100, denoising=True, compile="aot_eager") > 0
    model = bench.unsupnn_rbm(n_hidden=8, batch=100, k=1, persistent=False, compile="aot_eager")
    assert bench.unsupnn_epoch(model, x, batch=100) > 0 and model.hparams.compile == "aot_eager"


def test_benchmark_refuses_cuda_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="no GPU"):
        bench.main(["--device", "cuda", "--n", "200", "--out", str(tmp_path / "b.json")])


def test_bare_loops_start_from_the_parameters_of_the_unsupnn_modules():
    x, _ = bench.load_data(None, 200)
    rbm, ae = bench.unsupnn_rbm(n_hidden=8, batch=100, k=1, persistent=False), bench.unsupnn_ae(n_hidden=8, denoising=False)
    torch.manual_seed(bench.SEED)
    assert torch.equal(rbm.rbm.W, torch.randn(8, 784) * 0.01)
    torch.manual_seed(bench.SEED)
    bare = bench.BareAutoencoder(8)
    assert torch.equal(ae.autoencoder.encoder[0].weight, bare.encoder[0].weight)
    assert torch.equal(ae.autoencoder.decoder_weight[0], bare.decoder.weight)


# --- the fused CD step ------------------------------------------------------------------------------------


@pytest.mark.parametrize("visible, k, persistent", [("bernoulli", 1, False), ("bernoulli", 3, False),
                                                    ("bernoulli", 2, True), ("gaussian", 2, False)])
def test_cd_step_is_negative_phase_then_contrastive_divergence(visible, k, persistent):
    torch.manual_seed(0)
    rbm = RBM(n_visible=7, n_hidden=5, visible=visible).double()
    with torch.no_grad():
        rbm.W.mul_(50)  # some saturated units
        rbm.b.normal_()
    v = torch.rand(9, 7, dtype=torch.float64).round() if visible == "bernoulli" else torch.randn(9, 7, dtype=torch.float64)
    chains = torch.rand(6, 7, dtype=torch.float64).round() if persistent else None  # fewer chains than examples

    v_model, recon = rbm.negative_phase(v, k, chains, torch.Generator().manual_seed(3))
    rbm.contrastive_divergence(v, v_model).backward()
    expected = [p.grad.clone() for p in rbm.parameters()]
    loss_expected = rbm.contrastive_divergence(v, v_model)
    rbm.zero_grad()

    step = rbm.cd_step(v, k, chains, torch.Generator().manual_seed(3))
    step.loss.backward()
    assert torch.equal(step.v_model, v_model) and torch.equal(step.recon, recon)
    torch.testing.assert_close(step.loss, loss_expected, rtol=1e-12, atol=1e-12)
    for got, want in zip((p.grad for p in rbm.parameters()), expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_cd_step_gradient_scales_with_the_upstream_gradient():
    torch.manual_seed(0)
    rbm = RBM(n_visible=6, n_hidden=4).double()
    v = torch.rand(5, 6, dtype=torch.float64).round()
    (3.0 * rbm.cd_step(v, 1, generator=torch.Generator().manual_seed(0)).loss).backward()
    triple = rbm.W.grad.clone()
    rbm.zero_grad()
    rbm.cd_step(v, 1, generator=torch.Generator().manual_seed(0)).loss.backward()
    torch.testing.assert_close(triple, 3 * rbm.W.grad)


def test_softplus_equals_torchs_everywhere_and_free_energy_stays_exact_for_saturated_units():
    x = torch.cat([torch.linspace(-200, 200, 40001), torch.tensor([0.0, -1e-8, 1e-8, 1e4, -1e4])])
    exact = torch.logaddexp(x.double(), torch.zeros((), dtype=torch.float64))  # F.softplus cuts to x above 20
    torch.testing.assert_close(softplus(x).double(), exact, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(softplus(x.double()), exact, rtol=1e-14, atol=1e-14)
    torch.manual_seed(0)
    rbm = RBM(n_visible=20, n_hidden=30)
    with torch.no_grad():
        rbm.W.mul_(2000)  # pre-activations of hundreds: saturated hidden units
    v = torch.rand(8, 20).round()
    pre = F.linear(v, rbm.W, rbm.c).double()
    want = -(v.double() @ rbm.b.double()) - F.softplus(pre).sum(-1)
    torch.testing.assert_close(rbm.free_energy(v).double(), want, rtol=1e-6, atol=1e-4)


def test_gibbs_in_bfloat16_keeps_the_statistics_in_float32():
    torch.manual_seed(0)
    rbm = RBM(n_visible=12, n_hidden=6)
    v = torch.rand(10, 12).round()
    chains = torch.rand(10, 12).round()
    step = rbm.cd_step(v, 3, chains, gibbs_dtype=torch.bfloat16)
    step.loss.backward()
    assert step.loss.dtype == step.v_model.dtype == step.recon.dtype == rbm.W.grad.dtype == torch.float32
    assert set(step.v_model.unique().tolist()) <= {0.0, 1.0}
    # CD-1 has no product that only draws a state: bf16 changes nothing there
    one = rbm.cd_step(v, 1, generator=torch.Generator().manual_seed(1), gibbs_dtype=torch.bfloat16)
    ref = rbm.cd_step(v, 1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one.v_model, ref.v_model) and torch.equal(one.loss, ref.loss)


def test_fast_bernoulli_draws_with_the_right_probabilities():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).expand(200_000, -1)
    draws = bernoulli(p, torch.Generator().manual_seed(0))
    assert draws.dtype == p.dtype and set(draws.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(draws.mean(0), p[0], atol=0.005, rtol=0)
    assert draws[:, 0].sum() == 0 and draws[:, 4].min() == 1


# --- the Lightning modules --------------------------------------------------------------------------------


class _HostSyncs(TorchDispatchMode):
    """Counts aten._local_scalar_dense: what .item(), bool(t), float(t) and `if t:` run, on any device."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class _WatchSteps(pl.Callback):
    """Watches from the start of each training batch to its end: data transfer, training_step, backward,
    optimizer step and Lightning's own work around them."""

    def __init__(self):
        self.mode = _HostSyncs()

    def on_train_batch_start(self, *args):
        self.mode.__enter__()

    def on_train_batch_end(self, *args):
        self.mode.__exit__(None, None, None)


@pytest.mark.parametrize("make", [
    lambda: LitRBM(n_features=784, n_hidden=16, k=2, persistent=True, n_chains=100),
    lambda: LitRBM(n_features=784, n_hidden=16, k=1),
    lambda: LitAutoencoder(n_features=784, hidden_dims=[16], corruption="mask", corruption_level=0.25),
], ids=["rbm-pcd", "rbm-cd", "dae"])
def test_training_steps_never_read_a_tensor_on_the_host(make):
    x, _ = bench.load_data(None, 300)
    watch = _WatchSteps()
    trainer = fit(make(), x, epochs=2, callbacks=[watch])
    assert trainer.global_step == 6 and watch.mode.count == 0
    # The divergence check that every run has tests each loss on the device and reads it every 50 steps
    # (and at the epoch's end, outside the watched span): no sync within these steps either.
    watch = _WatchSteps()
    fit(make(), x, callbacks=[StopOnDivergence(), watch])
    assert watch.mode.count == 0
    # The detector works: made to read its flag every update (its on_train_batch_end runs before the watcher's),
    # it reads it once per training step: 3 with one batch per step, 1 with the 3 batches in one step.
    for per_step, syncs in ((1, 3), (10, 1)):
        watch = _WatchSteps()
        model = make()
        model.set_batches_per_step(per_step)
        fit(model, x, callbacks=[StopOnDivergence(every_n_steps=1), watch])
        assert watch.mode.count >= syncs


def test_epoch_metrics_are_the_batch_weighted_means():
    # 250 examples at batch 100: batches of 100, 100 and 50 examples
    x, _ = bench.load_data(None, 250)
    seen = []

    class Record(LitRBM):
        def update_loss(self, batch):
            loss = super().update_loss(batch)
            seen.append((len(batch), float(loss.detach())))
            return loss

    trainer = fit(Record(n_features=784, n_hidden=8), x)
    want = sum(n * v for n, v in seen) / sum(n for n, _ in seen)
    assert [n for n, _ in seen] == [100, 100, 50]
    assert math.isclose(float(trainer.callback_metrics["train/cd_loss"]), want, rel_tol=1e-5)


def test_epoch_means_unit():
    logged = {}

    class Module:
        def log(self, name, value, **kwargs):
            logged[name] = (float(value), kwargs)

    means = EpochMeans(prog_bar=["a"])
    means.add({"a": torch.tensor(1.0), "b": torch.tensor(4.0)}, 1)
    means.add({"a": torch.tensor(3.0), "b": torch.tensor(0.0)}, 3)
    means.log(Module())
    assert logged["a"][0] == 2.5 and logged["b"][0] == 1.0
    assert logged["a"][1] == dict(on_step=False, on_epoch=True, sync_dist=True, batch_size=4, prog_bar=True)
    assert logged["b"][1]["prog_bar"] is False and means.count == 0
    with pytest.raises(ValueError, match="metrics"):
        means.add({"a": torch.tensor(1.0)}, 1)
        means.add({"c": torch.tensor(1.0)}, 1)


@pytest.mark.parametrize("make", [
    lambda c: LitRBM(n_features=784, n_hidden=16, k=2, persistent=True, n_chains=100, compile=c),
    lambda c: LitAutoencoder(n_features=784, hidden_dims=[16], corruption="mask", corruption_level=0.25, compile=c),
], ids=["rbm", "dae"])
def test_compiled_training_step_trains_like_the_eager_one(make):
    x, _ = bench.load_data(None, 300)
    params = []
    for option in (False, "aot_eager"):
        torch.manual_seed(0)
        model = make(option)
        torch.manual_seed(1)
        fit(model, x)
        params.append([p.detach().clone() for p in model.parameters()])
    for eager, compiled in zip(*params):
        torch.testing.assert_close(compiled, eager)


def test_bad_compile_and_gibbs_dtype_options_are_refused():
    with pytest.raises(ValueError, match="model.compile"):
        LitRBM(n_features=4, compile="")
    with pytest.raises(ValueError, match="model.compile"):
        LitAutoencoder(n_features=4, hidden_dims=[2], compile=3)
    with pytest.raises(ValueError, match="model.gibbs_dtype"):
        LitRBM(n_features=4, gibbs_dtype="float8")


def test_rbm_trains_with_bfloat16_gibbs_chains():
    x, _ = bench.load_data(None, 300)
    model = LitRBM(n_features=784, n_hidden=16, k=3, persistent=True, n_chains=100, gibbs_dtype="bfloat16")
    trainer = fit(model, x)
    assert math.isfinite(float(trainer.callback_metrics["train/cd_loss"])) and model.chains.dtype == torch.float32


# --- optimizer and loader ---------------------------------------------------------------------------------


def test_optimizers_get_their_fused_kernels_unless_the_config_chooses():
    layer = torch.nn.Linear(5, 3)
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.9}
    assert build_optimizer(sgd, layer.parameters(), lr=0.1).defaults["fused"] is True
    assert build_optimizer({"_target_": "torch.optim.Adam", "_partial_": True}, layer.parameters(), lr=0.1).defaults["fused"]
    chosen = build_optimizer({**sgd, "foreach": False}, layer.parameters(), lr=0.1).defaults
    assert not chosen.get("fused") and chosen["foreach"] is False
    assert not build_optimizer({"_target_": "torch.optim.RMSprop", "_partial_": True}, layer.parameters(), lr=0.1).defaults.get("fused")


def test_fused_sgd_makes_the_same_update():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    b.load_state_dict(a.state_dict())
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.9}
    fused = build_optimizer(sgd, a.parameters(), lr=0.1, weight_decay=0.01)
    plain = build_optimizer({**sgd, "foreach": False}, b.parameters(), lr=0.1, weight_decay=0.01)
    x = torch.randn(8, 6)
    for _ in range(3):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_pin_memory_serves_the_same_batches_and_is_off_without_cuda():
    x, y = torch.rand(250, 3), torch.arange(250)
    plain = list(InMemoryLoader(x, y, batch_size=100, shuffle=True, seed=1))
    pinned_loader = InMemoryLoader(x, y, batch_size=100, shuffle=True, seed=1, pin_memory=True)
    assert pinned_loader.pin_memory == torch.cuda.is_available()
    for epoch in range(2):  # the pinned buffers are reused from one epoch to the next
        pinned_loader.set_epoch(0)
        for (a, ya), (b, yb) in zip(plain, pinned_loader):
            assert torch.equal(a, b) and torch.equal(ya, yb)
            assert b.is_pinned() == torch.cuda.is_available()
    for a, b in zip(InMemoryLoader(x, batch_size=100), InMemoryLoader(x, batch_size=100, pin_memory=True)):
        assert torch.equal(a, b)
    dm = bench._datamodule(torch.rand(300, 784), 100)
    assert dm.pin_memory is None and dm.train_dataloader().pin_memory == torch.cuda.is_available()


# --- the divergence check ---------------------------------------------------------------------------------


class _BlowsUp(LitRBM):
    """An RBM whose loss is NaN from step ``at`` on (its parameters stay finite: the loss alone must be seen)."""

    def __init__(self, at: int, **kwargs):
        super().__init__(**kwargs)
        self.at = at

    def update_loss(self, batch):
        loss = super().update_loss(batch)
        return loss * float("nan") if self.global_step >= self.at else loss


@pytest.mark.parametrize("every", [1, 50])
def test_divergence_is_reported_at_the_step_it_happened_whatever_the_check_interval(every, tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    from unsupnn.divergence import DivergenceError

    x, _ = bench.load_data(None, 1000)  # 10 steps an epoch
    saver = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=-1, filename="e{epoch}",
                            auto_insert_metric_name=False)
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=[StopOnDivergence(every_n_steps=every), saver])
    with pytest.raises(DivergenceError, match=r"diverged at step 24 \(epoch 2\): the training loss is nan"):
        trainer.fit(_BlowsUp(23, n_features=784, n_hidden=8), datamodule=bench._datamodule(x, 100))
    # Checkpoints of the two finite epochs only: the one of the epoch that diverged was never written.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e0.ckpt", "e1.ckpt", "last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 1


# --- matmul precision (TF32 on a GPU) ----------------------------------------------------------------------


@pytest.fixture
def restore_matmul_precision():
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def test_matmul_precision_option_reaches_torch_and_bad_values_are_refused(tmp_path, restore_matmul_precision):
    from conftest import make_cfg

    from unsupnn import tasks

    fast = ["trainer=fdr", "logger=none", "callbacks=none", "model.n_hidden=8"]
    tasks.train(make_cfg("train", [*fast, "matmul_precision=high"], tmp_path / "a"))
    assert torch.get_float32_matmul_precision() == "high"
    tasks.train(make_cfg("train", fast, tmp_path / "b"))  # the default puts full float32 back
    assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match=r"matmul_precision='tf32'; use one of \['highest', 'high', 'medium'\]"):
        tasks.train(make_cfg("train", [*fast, "matmul_precision=tf32"], tmp_path / "c"))


def test_pcd_reconstructs_the_data_every_log_interval_and_train_recon_is_their_mean():
    x, _ = bench.load_data(None, 1000)  # 10 steps an epoch
    made = []

    class Record(LitRBM):
        def update_loss(self, batch):
            made.append(self.global_step % self._recon_every == 0)
            return super().update_loss(batch)

    seen = []
    real_step = RBM.cd_step

    def spy(self, v, k, chains=None, generator=None, **kw):
        step = real_step(self, v, k, chains, generator, **kw)
        if step.recon is not None:
            seen.append(float(F.mse_loss(step.recon, v)))
        return step

    model = Record(n_features=784, n_hidden=8, persistent=True, n_chains=100)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, log_every_n_steps=4)
    RBM.cd_step = spy
    try:
        trainer.fit(model, datamodule=bench._datamodule(x, 100))
    finally:
        RBM.cd_step = real_step
    assert made == [True, False, False, False, True, False, False, False, True, False] and len(seen) == 3
    assert math.isclose(float(trainer.callback_metrics["train/recon"]), sum(seen) / 3, rel_tol=1e-5)
    # CD-k reconstructs on every step: its first Gibbs step is the reconstruction
    step = RBM(n_visible=784, n_hidden=8).cd_step(x[:10], 1, reconstruct=False)
    assert step.recon is not None


# --- several updates per Lightning step ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda n: LitRBM(n_features=784, n_hidden=8, persistent=True, n_chains=100, batches_per_step=n),
    lambda n: LitRBM(n_features=784, n_hidden=8, k=2, batches_per_step=n),
    lambda n: LitAutoencoder(n_features=784, hidden_dims=[8], corruption="mask", corruption_level=0.25, batches_per_step=n),
], ids=["rbm-pcd", "rbm-cd2", "dae"])
def test_several_batches_per_step_train_exactly_like_one(make):
    # 11 batches an epoch, the last of 50: groups of 3 leave one of 2. Grey pixels, binarised afresh each
    # epoch: the binarisation's draws must not interleave with the model's in a way that depends on the grouping.
    x = torch.rand(1050, 784, generator=torch.Generator().manual_seed(0))
    runs = []
    for n in (1, 3, 10):
        torch.manual_seed(0)
        model = make(n)
        torch.manual_seed(1)
        trainer = fit(model, x, epochs=2, binarize="stochastic")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        runs.append((trainer.global_step, trainer.num_training_batches, [p.detach().clone() for p in model.parameters()], metrics))
    (steps, batches, params, metrics), *grouped = runs
    assert steps == 22 and batches == 11 and [r[1] for r in grouped] == [4, 2]  # Lightning's steps: groups
    for steps_n, _, params_n, metrics_n in grouped:
        assert steps_n == steps and metrics_n == metrics  # global_step counts updates; the same epoch means
        for a, b in zip(params, params_n):
            assert torch.equal(a, b)  # bit for bit: the same updates in the same order with the same draws


def test_max_steps_stops_inside_a_group():
    x, _ = bench.load_data(None, 1000)  # 10 batches an epoch: step 13 falls inside the second group of 10
    runs = []
    for n in (1, 10):
        trainer = pl.Trainer(max_epochs=5, max_steps=13, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
        torch.manual_seed(0)
        model = LitRBM(n_features=784, n_hidden=8, batches_per_step=n)
        trainer.fit(model, datamodule=bench._datamodule(x, 100))
        runs.append((trainer.global_step, trainer.current_epoch, model.rbm.W.detach().clone()))
    assert runs[0][:2] == runs[1][:2] and runs[1][0] == 13
    assert torch.equal(runs[0][2], runs[1][2])


def test_batch_groups_serve_the_loaders_batches_in_order():
    from unsupnn.data.loader import BatchGroups, Batches

    x, y = torch.rand(250, 3), torch.arange(250)
    loader = InMemoryLoader(x, y, batch_size=40, shuffle=True, seed=2)  # 7 batches, the last of 10
    groups = BatchGroups(InMemoryLoader(x, y, batch_size=40, shuffle=True, seed=2), 3)
    assert len(groups) == 3
    for epoch in (1, 0):  # set_epoch reaches the loader: the epoch's own shuffle
        loader.set_epoch(epoch)
        groups.set_epoch(epoch)
        served = list(groups)
        assert [len(g) for g in served] == [3, 3, 1] and all(isinstance(g, Batches) for g in served)
        for (a, ya), (b, yb) in zip(loader, [batch for g in served for batch in g]):
            assert torch.equal(a, b) and torch.equal(ya, yb)
    with pytest.raises(ValueError, match=r"model.batches_per_step=0; it must be a positive integer"):
        LitRBM(n_features=4, batches_per_step=0)
    with pytest.raises(ValueError, match=r"model.batches_per_step=2.5"):
        LitAutoencoder(n_features=4, hidden_dims=[2], batches_per_step=2.5)


@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_closed_form_gradient_trains_exactly_like_autograds_backward(persistent):
    # One process in full precision, LitRBM puts the CD step's closed-form gradient in .grad itself; the
    # autograd path (what DDP and gradient scalers need) must give the same training, bit for bit.
    x, _ = bench.load_data(None, 1050)
    seen, params = [], []

    class Autograd(LitRBM):
        def on_train_start(self):
            super().on_train_start()
            seen.append(self._closed_form)
            self._closed_form = False

    for cls in (LitRBM, Autograd):
        torch.manual_seed(0)
        model = cls(n_features=784, n_hidden=8, k=2, persistent=persistent, n_chains=100)
        torch.manual_seed(1)
        fit(model, x, epochs=2)
        params.append([p.detach().clone() for p in model.parameters()])
    assert seen == [True]  # the default path here is the closed form
    for a, b in zip(*params):
        assert torch.equal(a, b)
    # bf16 autocast: the backward pass, and the gradient still reaches the float32 parameters
    model = LitRBM(n_features=784, n_hidden=8, persistent=persistent, n_chains=100)
    trainer = pl.Trainer(max_epochs=1, precision="bf16-mixed", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    before = model.rbm.W.detach().clone()
    trainer.fit(model, datamodule=bench._datamodule(x, 100))
    assert not model._closed_form and model.rbm.W.dtype == torch.float32 and not torch.equal(before, model.rbm.W)
