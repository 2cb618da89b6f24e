"""Evidence for every problem of the source's code (ddpm_core.source_code).

Each test asserts that a problem exists, so the book's code chapter can rely on it; the
issue numbers are those of the package docstring. References are independent: closed forms,
parameter counts by formula, the book's own schedule, and the exact denoiser of Gaussian data.
The source indexes timesteps by i = 0..T-1, the paper's t = i + 1.
"""

from __future__ import annotations

import inspect
import math
import os
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ddpm_core.source_code as src
from ddpm_core import NoiseSchedule
from ddpm_core.data import load_mnist_5k
from ddpm_core.toy import gaussian_sampler_variance

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def install():
    """Bind the source's globals (as its __main__ block does) for one test, then unbind them."""

    def _install(T: int = 300, model=None, **kwargs) -> src.SourceGlobals:
        g = src.make_source_globals(T, model=model, **kwargs)
        src.use_source_globals(g)
        return g

    src.clear_source_globals()
    yield _install
    src.clear_source_globals()


@pytest.fixture(scope="module")
def unet() -> src.SimpleUnet:
    torch.manual_seed(0)
    return src.SimpleUnet()


@pytest.fixture(scope="module")
def mnist_test() -> torch.Tensor:
    """The 500 held-out offline MNIST digits, (500, 1, 32, 32) in [-1, 1]."""
    return load_mnist_5k("test")[0]


def zero_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def gaussian_pixel_model(mu: float, s: float, alphas_cumprod: torch.Tensor):
    """Exact E[eps | x_t] when every pixel is independent N(mu, s^2), in the source's indexing."""

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alphas_cumprod[t].reshape(-1, 1, 1, 1)  # source index i = paper's t = i + 1
        x0_hat = mu + a.sqrt() * s**2 / (a * s**2 + 1 - a) * (x - a.sqrt() * mu)
        return (x - a.sqrt() * x0_hat) / (1 - a).sqrt()

    return model


# ---------------------------------------------------------------- issue 1: globals


def test_issue1_functions_need_globals_bound_only_under_main(install):
    x, t = torch.zeros(1, 1, 4, 4), torch.tensor([0])
    with pytest.raises(NameError, match="sqrt_alphas_cumprod"):
        src.forward_diffusion_sample(x, t)
    with pytest.raises(NameError, match="'device'"):
        src.get_loss(zero_model, x, t)
    with pytest.raises(NameError, match="'betas'"):
        src.sample_timestep(x, t)
    # once the __main__ lines have run, they work, and the sampler calls the *global* model
    install(model=zero_model)
    assert src.forward_diffusion_sample(x, t)[0].shape == x.shape
    assert src.sample_timestep(x, t).shape == x.shape
    assert list(inspect.signature(src.sample_timestep).parameters) == ["x", "t"]  # no model argument


# ---------------------------------------------------------------- issue 2: batch size 1 only


def test_issue2_sample_timestep_fails_for_a_batch(install):
    install(model=zero_model)
    torch.manual_seed(0)
    assert src.sample_timestep(torch.randn(1, 1, 8, 8), torch.tensor([5])).shape == (1, 1, 8, 8)
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        src.sample_timestep(torch.randn(2, 1, 8, 8), torch.tensor([5, 5]))


# ---------------------------------------------------------------- issue 3: BatchNorm


def test_issue3_batchnorm_output_depends_on_the_batch_and_mode(unet):
    torch.manual_seed(1)
    x, t = torch.randn(4, 1, 16, 16), torch.tensor([10, 50, 100, 200])
    others = x.clone()
    others[1:] = 3 * torch.randn(3, 1, 16, 16)  # same image 0, different batch-mates
    unet.train()
    with torch.no_grad():
        a = unet(x, t)
        b = unet(others, t)
        unet.eval()
        c = unet(x, t)
        unet.train()
    assert float((a[0] - b[0]).abs().max()) > 0.1 * float(a[0].abs().max())  # measured: 0.46 of 0.48
    assert float((a - c).abs().max()) > 0.1  # measured: 0.49


def test_issue3_sampling_updates_running_statistics(unet, install):
    install(model=unet)
    bn = unet.downs[0].bnorm1
    unet.train()  # the source never calls model.eval()
    before_mean, before_count = bn.running_mean.clone(), int(bn.num_batches_tracked)
    torch.manual_seed(2)
    src.sample_timestep(torch.randn(1, 1, 32, 32), torch.tensor([5]))  # under @torch.no_grad()
    assert int(bn.num_batches_tracked) == before_count + 1
    assert float((bn.running_mean - before_mean).abs().max()) > 1e-3  # measured: 0.024
    # a single 16 x 16 image reaches a 1 x 1 bottleneck, where train-mode BatchNorm gives up
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        src.sample_timestep(torch.randn(1, 1, 16, 16), torch.tensor([5]))


# ---------------------------------------------------------------- issue 4: sampling inside training


class CountingModel(torch.nn.Module):
    """A tiny stand-in for SimpleUnet that counts its calls."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.calls = 0

    def forward(self, x, t):
        self.calls += 1
        return self.conv(x)


def test_issue4_training_loop_samples_a_chain_every_5_steps(install):
    model = CountingModel()
    install(model=model)
    torch.manual_seed(3)
    data = TensorDataset(torch.rand(6 * 16, 1, 32, 32) * 2 - 1, torch.zeros(6 * 16))
    losses, samples = src.source_train(DataLoader(data, batch_size=16, shuffle=True, drop_last=True))
    assert len(losses) == 6
    assert [step for step, _ in samples] == [0, 5]
    assert model.calls == 6 + 2 * 300  # 6 to train, 600 to sample
    model.calls = 0
    losses, samples = src.source_train(DataLoader(data, batch_size=16), max_steps=2)
    assert len(losses) == 2 and model.calls == 2 + 300


# ---------------------------------------------------------------- issue 5: L1 loss


def test_issue5_loss_is_l1_not_squared_error(install):
    install()
    torch.manual_seed(4)
    x0 = torch.zeros(64, 1, 32, 32)
    loss = float(src.get_loss(zero_model, x0, torch.randint(0, 300, (64,))))
    n = x0.numel()
    se = math.sqrt(1 - 2 / math.pi) / math.sqrt(n)  # SD of |eps| over sqrt(n)
    assert abs(loss - math.sqrt(2 / math.pi)) < 4 * se  # E|eps| = sqrt(2 / pi): L1
    assert abs(loss - 1.0) > 50 * se  # E[eps^2] = 1 would be L_simple


# ---------------------------------------------------------------- issue 6: T = 300


def test_issue6_T300_leaves_signal_in_x_T(install, mnist_test):
    g = install()
    x0 = mnist_test
    assert float(g.alphas_cumprod[-1]) == pytest.approx(0.04806, abs=1e-5)
    assert float(g.sqrt_alphas_cumprod[-1]) == pytest.approx(0.2192, abs=1e-4)
    assert float(NoiseSchedule.linear(1000).sqrt_alphas_cumprod[-1]) == pytest.approx(0.00635, abs=1e-5)
    # L_T = KL(N(sqrt(a) x0, 1 - a) || N(0, 1)) per pixel = (a x0^2 - a - log(1 - a)) / 2 nats
    a = g.alphas_cumprod[-1].double()
    kl_bits = 0.5 * (a * x0.double() ** 2 - a - torch.log1p(-a)) / math.log(2)
    assert float(kl_bits.mean()) == pytest.approx(0.0335, abs=5e-4)
    # the mean pixel of x_T in training is far from that of the sampler's start N(0, I)
    torch.manual_seed(5)
    x_T, _ = src.forward_diffusion_sample(x0, torch.full((x0.shape[0],), 299))
    image_means = x_T.mean(dim=(1, 2, 3))  # (N,); for N(0, I) images: 0 +- 1/32
    assert float(image_means.mean()) < -4 / 32  # measured: -0.16
    assert float((image_means > -1 / 32).float().mean()) < 0.05


# ---------------------------------------------------------------- issue 7: clamping x_t


def test_issue7_clamping_x_t_distorts_the_samples(install, mnist_test):
    g = install(model=zero_model)
    x0 = mnist_test
    torch.manual_seed(6)
    x_t, _ = src.forward_diffusion_sample(x0, torch.full((x0.shape[0],), 299))
    assert float((x_t.abs() > 1).float().mean()) > 0.25  # measured: 0.32 of x_T leaves [-1, 1]

    s = 0.3  # pixel data N(0, 0.3^2): inside [-1, 1] up to 3.3 SD
    install(model=gaussian_pixel_model(0.0, s, g.alphas_cumprod))
    torch.manual_seed(7)
    clamped, snapshots = src.source_sample_loop(128)  # 16,384 independent pixels
    torch.manual_seed(7)
    img = torch.randn(1, 1, 128, 128)
    for i in range(299, -1, -1):  # the same loop without the clamp
        img = src.sample_timestep(img, torch.full((1,), i))
    predicted = gaussian_sampler_variance(NoiseSchedule.linear(300), s**2, "beta_tilde")
    se = predicted * math.sqrt(2 / img.numel())
    assert abs(float(img.var()) - predicted) < 4 * se  # the source's step is right ...
    assert predicted - float(clamped.var()) > 5 * se  # ... its clamp is not (measured: 0.0770 vs 0.0863)
    # issue 15: the plotted steps; x_T (i = 299) is not among them
    assert sorted(snapshots) == list(range(0, 300, 30))


# ---------------------------------------------------------------- issues 8, 9, 10, 13: the network


def conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def test_issue8_parameter_count_by_formula(unet):
    emb = 32
    expected = (32 * 32 + 32) + conv(1, 64, 3) + conv(64, 1, 1)  # time MLP, conv0, output
    for i, o in zip((64, 128, 256, 512), (128, 256, 512, 1024)):  # down blocks
        expected += (emb * o + o) + conv(i, o, 3) + conv(o, o, 4) + conv(o, o, 3) + 4 * o
    for i, o in zip((1024, 512, 256, 128), (512, 256, 128, 64)):  # up blocks
        expected += (emb * o + o) + conv(2 * i, o, 3) + conv(o, o, 4) + conv(o, o, 3) + 4 * o
    assert sum(p.numel() for p in unet.parameters()) == expected == 62_437_601


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the tensor of interest is seen."""


def time_shift_added_by(block: src.Block, emb: torch.Tensor) -> torch.Tensor:
    """What the source's Block.forward adds to h for the time embeddings ``emb`` (N, 32).

    Measured, not recomputed: h after bnorm1 (hooked) is subtracted from h as it enters conv2
    (hooked, and the pass stopped there). Returns (N, C, 2, 2), one row per embedding.
    """
    seen = {}

    def enter_conv2(module, inputs):
        seen["after"] = inputs[0]
        raise _Stop

    hooks = [block.bnorm1.register_forward_hook(lambda module, inputs, out: seen.__setitem__("before", out)),
             block.conv2.register_forward_pre_hook(enter_conv2)]
    x = torch.randn(1, block.conv1.in_channels, 2, 2, generator=torch.Generator().manual_seed(0))
    try:
        block(x, emb)
    except _Stop:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    return seen["after"] - seen["before"]


def test_issue9_time_signal_is_nonnegative_and_absent_in_some_channels(unet):
    unet.eval()
    try:
        with torch.no_grad():
            emb = unet.time_mlp(torch.arange(300))  # (300, 32): the source's embedding of every i
            shifts = [time_shift_added_by(blk, emb) for blk in list(unet.downs) + list(unet.ups)]
    finally:
        unet.train()
    assert sum(s.shape[1] for s in shifts) == 2880
    assert all(float(s.min()) >= 0 for s in shifts)  # the shift is never negative ...
    assert sum(int((s > 0).any(dim=(0, 2, 3)).sum()) for s in shifts) > 2000  # ... and mostly present
    silent = sum(int((s.amax(dim=(0, 2, 3)) == 0).sum()) for s in shifts)
    assert silent > 0  # measured: 173 of 2,880 channels get nothing at any t


def test_issue10_first_up_block_concatenates_x_with_itself(unet):
    seen = {}

    def grab(module, inputs):
        seen["x"] = inputs[0]

    handle = unet.ups[0].register_forward_pre_hook(grab)
    torch.manual_seed(8)
    with torch.no_grad():
        unet.eval()
        unet(torch.randn(2, 1, 16, 16), torch.tensor([3, 100]))
        unet.train()
    handle.remove()
    x = seen["x"]  # (2, 2048, 1, 1)
    torch.testing.assert_close(x[:, :1024], x[:, 1024:], rtol=0, atol=0)
    assert unet.ups[0].conv1.weight.numel() == 9_437_184


def test_issue13_unet_needs_sizes_divisible_by_16(unet):
    with torch.no_grad():
        unet.eval()
        try:
            with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
                unet(torch.zeros(1, 1, 28, 28), torch.tensor([0]))
        finally:
            unet.train()


# ---------------------------------------------------------------- issues 11, 12: the data


def write_fake_mnist(raw: str, prefix: str, n: int, label: int) -> None:
    """Write n random 28 x 28 digits in MNIST's idx format (what torchvision reads)."""
    rng = np.random.default_rng(n)
    with open(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28))
        f.write(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes())
    with open(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 2049, n))
        f.write(np.full(n, label, dtype=np.uint8).tobytes())


def test_issue11_and_12_mnist_not_downloaded_and_test_set_merged(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    monkeypatch.chdir(tmp_path)  # the source reads "./Data"
    with pytest.raises(RuntimeError, match="Dataset not found"):
        src.load_transformed_dataset(32)
    raw = tmp_path / "Data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_fake_mnist(str(raw), "train", 3, label=1)
    write_fake_mnist(str(raw), "t10k", 2, label=7)
    data = src.load_transformed_dataset(32)
    assert len(data) == 5
    assert [data[i][1] for i in range(5)] == [1, 1, 1, 7, 7]  # the test digits are training data
    assert data[0][0].shape == (1, 32, 32)


# ---------------------------------------------------------------- issue 15: the plot


def test_issue15_plot_order_and_small_T(install):
    install(T=300, model=zero_model)
    calls = []
    torch.manual_seed(11)
    _, snapshots = src.source_sample_loop(8, subplot=lambda *args: calls.append(args))  # the source's plt.subplot args
    steps = list(snapshots)  # in the order the loop draws them
    assert steps == list(range(270, -1, -30))
    assert calls == [(1, 10, panel) for panel in range(10, 0, -1)]
    panel_of = {i: args[2] for i, args in zip(steps, calls)}
    assert panel_of[0] == 1 and panel_of[270] == 10  # the finished image on the left: the row reads backwards
    assert 299 not in snapshots  # x_T is never drawn
    install(T=5, model=zero_model)
    with pytest.raises(ZeroDivisionError):
        src.source_sample_loop(8)


# ---------------------------------------------------------------- issue 14: the training recipe


def test_issue14_training_recipe(install, unet, monkeypatch):
    made = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            made.append((self, kwargs))

    clipped = []
    monkeypatch.setattr(src.training, "Adam", RecordingAdam)  # the module of source_train
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *args, **kwargs: clipped.append(args))
    monkeypatch.setattr(torch.nn.utils, "clip_grad_value_", lambda *args, **kwargs: clipped.append(args))
    model = CountingModel()
    install(model=model)
    data = TensorDataset(torch.rand(2 * 16, 1, 32, 32) * 2 - 1, torch.zeros(2 * 16))
    loader = DataLoader(data, batch_size=16)
    torch.manual_seed(12)
    losses, _ = src.source_train(loader)  # the source's defaults
    assert len(losses) == len(loader)  # one pass over the data (epochs = 1): 70,000 // 16 = 4,375 steps on MNIST
    ((optimizer, kwargs),) = made
    assert kwargs == {"lr": 0.001}  # Ho et al.: 2e-4
    assert [group["lr"] for group in optimizer.param_groups] == [0.001]  # still, after training: no warm-up
    assert optimizer.param_groups[0]["params"] == list(model.parameters())  # sampling uses these weights: no EMA
    assert clipped == []  # no gradient clipping
    assert not any(isinstance(m, torch.nn.Dropout) for m in unet.modules())  # no dropout


# ---------------------------------------------------------------- issue 16: a comment


def test_issue16_comment_says_variance_but_code_adds_the_standard_deviation(install):
    g = install()
    assert "# mean + variance" in inspect.getsource(src.forward_diffusion_sample)
    x0, i = torch.full((4, 1, 8, 8), 0.5), torch.full((4,), 49)
    torch.manual_seed(13)
    x_t, noise = src.forward_diffusion_sample(x0, i)
    std, var = g.sqrt_one_minus_alphas_cumprod[49], 1 - g.alphas_cumprod[49]
    torch.testing.assert_close(x_t, g.sqrt_alphas_cumprod[49] * x0 + std * noise)  # the code is right
    assert abs(float(std) - float(var)) > 0.2  # 0.288 against 0.083: the two readings differ


# ---------------------------------------------------------------- checked, not a problem


def test_offset_timesteps_are_consistent_with_the_paper(install):
    g = install()
    book = NoiseSchedule.linear(300)
    # source index i holds the paper's t = i + 1, for every array the sampler uses
    torch.testing.assert_close(g.alphas_cumprod.double(), book.alphas_cumprod[1:], rtol=1e-5, atol=0)
    torch.testing.assert_close(g.betas.double(), book.betas[1:], rtol=1e-6, atol=0)
    torch.testing.assert_close(g.posterior_variance[1:].double(), book.posterior_variance[2:], rtol=0, atol=5e-8)
    # float32 costs at most 1e-4 (relative) in sqrt(1 - alphabar), measured 8.3e-5
    rel = (g.sqrt_one_minus_alphas_cumprod.double() / book.sqrt_one_minus_alphas_cumprod[1:] - 1).abs()
    assert float(rel.max()) < 1e-4
    assert float(g.posterior_variance[0]) == 0.0  # the last step adds no noise, as in Algorithm 2


def test_sinusoidal_embedding_matches_ho_et_al():
    """Ho et al.'s get_timestep_embedding: emb = exp(-log(10000) k / (half - 1)), [sin, cos]."""
    t = torch.tensor([0, 1, 17, 299])
    half = 16
    freqs = torch.tensor([math.exp(-math.log(10000) * k / (half - 1)) for k in range(half)])
    expected = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], dim=1)
    torch.testing.assert_close(src.SinusoidalPositionEmbeddings(32)(t), expected)


# ---------------------------------------------------------------- bad input


def test_make_source_globals_rejects_bad_arguments():
    for kwargs, match in ((dict(T=0), "T must be"), (dict(img_size=0), "img_size"), (dict(batch_size=1.5), "batch_size")):
        with pytest.raises(ValueError, match=match):
            src.make_source_globals(**kwargs)
    with pytest.raises(ValueError, match="g must be a SourceGlobals"):
        src.use_source_globals({"T": 300})
