"""The U-Net eps_theta: shapes, the sinusoidal embedding against its formula, argument checks.

Timestep convention: the paper's t = 1..T; the network sees t only through its embedding.
"""

import math

import pytest
import torch
from torch.nn import functional as F

from ddpm_core.unet import ResBlock, SelfAttention, UNet, UNetConfig, Upsample, count_parameters, sinusoidal_embedding

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = UNetConfig(patch_size=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                  attention_resolutions=(16,), num_groups=4, dropout=0.0)


def randomized(config: UNetConfig, seed: int = 0) -> UNet:
    """A network whose zero-initialised layers are perturbed, so that its output depends on everything."""
    torch.manual_seed(seed)
    model = UNet(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


# ----------------------------------------------------------------------------- embedding


def test_sinusoidal_embedding_matches_formula():
    t = torch.tensor([1, 2, 37, 500, 1000])
    dim = 16
    emb = sinusoidal_embedding(t, dim)
    assert emb.shape == (5, dim) and emb.dtype == torch.float32
    half = dim // 2
    for b, tb in enumerate(t.tolist()):  # the docstring's formula, one entry at a time, in float64
        for i in range(half):
            w = 10000.0 ** (-i / half)
            assert emb[b, i].item() == pytest.approx(math.sin(tb * w), abs=2e-4)
            assert emb[b, half + i].item() == pytest.approx(math.cos(tb * w), abs=2e-4)


def test_sinusoidal_embedding_separates_timesteps():
    emb = sinusoidal_embedding(torch.arange(1, 1001), 32)
    distances = torch.cdist(emb, emb)  # (1000, 1000)
    distances.fill_diagonal_(math.inf)
    assert float(distances.min()) > 0.1  # no two timesteps share an embedding


@pytest.mark.parametrize("dim", [0, 1, 7, 2.0, True])
def test_sinusoidal_embedding_rejects_bad_dim(dim):
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding(torch.tensor([1, 2]), dim)


def test_sinusoidal_embedding_rejects_bad_t():
    with pytest.raises(ValueError, match="t must"):
        sinusoidal_embedding(torch.ones(2, 2, dtype=torch.long), 8)


# ----------------------------------------------------------------------------- network


@pytest.mark.parametrize("config", [UNetConfig(), TINY, UNetConfig(patch_size=1, base_channels=16, num_groups=8)])
def test_output_has_input_shape(config):
    model = UNet(config)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        out = model(x, torch.tensor([1, 500, 1000]))
    assert out.shape == x.shape


def test_fresh_network_predicts_zero():
    """The output convolution starts at zero, so a fresh network's L_simple is E||eps||^2 = 1."""
    model = UNet(TINY)
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 32), torch.tensor([3, 40]))
    assert torch.equal(out, torch.zeros_like(out))


def test_output_depends_on_t():
    model = randomized(TINY)
    x = torch.randn(1, 1, 32, 32).expand(2, -1, -1, -1)
    with torch.no_grad():
        out = model(x, torch.tensor([1, 900]))
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_examples_do_not_interact():
    """GroupNorm normalizes each example on its own: no batch statistics (unlike BatchNorm)."""
    model = randomized(TINY)
    x, t = torch.randn(4, 1, 32, 32), torch.tensor([5, 50, 500, 999])
    with torch.no_grad():
        batched = model(x, t)
        single = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_patch_size_two_matches_pixel_unshuffle():
    """patch_size = 2 is a U-Net on the (B, 4, 16, 16) rearrangement of the image."""
    patched = randomized(UNetConfig(base_channels=8, channel_mults=(1, 2), attention_resolutions=(8,), num_groups=4))
    plain = UNet(UNetConfig(image_channels=4, image_size=16, patch_size=1, base_channels=8, channel_mults=(1, 2),
                            attention_resolutions=(8,), num_groups=4)).eval()
    plain.load_state_dict(patched.state_dict())
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([10, 700])
    # pixel (2i + a, 2j + b) of the image is channel 2a + b of cell (i, j), written out by hand:
    cells = torch.stack([x[:, 0, a::2, b::2] for a in range(2) for b in range(2)], dim=1)  # (B, 4, 16, 16)
    with torch.no_grad():
        out_cells = plain(cells, t)
        out = patched(x, t)
    for a in range(2):
        for b in range(2):
            torch.testing.assert_close(out[:, 0, a::2, b::2], out_cells[:, 2 * a + b])


def test_channels_last_gives_the_same_output():
    model = randomized(TINY)
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([1, 2])
    with torch.no_grad():
        ref = model(x, t)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_default_size_suits_a_cpu():
    n = count_parameters(UNet())
    assert 1_000_000 <= n <= 2_000_000


def test_count_parameters_by_hand():
    assert count_parameters(torch.nn.Linear(3, 4)) == 3 * 4 + 4
    frozen = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    frozen[0].requires_grad_(False)
    assert count_parameters(frozen) == 4 * 2 + 2
    model = UNet(TINY)
    assert count_parameters(model) == sum(v.numel() for v in model.state_dict().values())  # no buffers


@pytest.mark.parametrize(
    "x, t, match",
    [
        (torch.randn(2, 3, 32, 32), torch.tensor([1, 2]), "x must have shape"),
        (torch.randn(2, 1, 28, 28), torch.tensor([1, 2]), "x must have shape"),
        (torch.randn(1, 32, 32), torch.tensor([1]), "x must have shape"),
        (torch.zeros(2, 1, 32, 32, dtype=torch.long), torch.tensor([1, 2]), "x must be a floating"),
        (torch.randn(2, 1, 32, 32), torch.tensor([1.0, 2.0]), "t must be an integer"),
        (torch.randn(2, 1, 32, 32), 5, "t must be an integer"),
        (torch.randn(2, 1, 32, 32), torch.tensor([1, 2, 3]), r"t must have shape \(B,\)"),
    ],
)
def test_forward_rejects_bad_input(x, t, match):
    with pytest.raises(ValueError, match=match):
        UNet(TINY)(x, t)


@pytest.mark.parametrize(
    "field, value",
    [
        ("image_channels", 0),
        ("image_size", 30),
        ("patch_size", 0),
        ("base_channels", 2.0),
        ("channel_mults", [1, 2]),
        ("channel_mults", ()),
        ("channel_mults", (1, 0)),
        ("num_res_blocks", 0),
        ("attention_resolutions", (5,)),
        ("attention_resolutions", 8),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("num_groups", 5),
        ("num_groups", True),
    ],
)
def test_config_rejects_bad_field(field, value):
    with pytest.raises(ValueError, match=field if field != "image_size" else "image_size must be divisible"):
        UNetConfig(**{field: value})


def test_config_is_frozen_keyword_only_and_round_trips():
    config = UNetConfig(base_channels=16, channel_mults=(1, 2, 4), attention_resolutions=())
    with pytest.raises(Exception):
        config.base_channels = 8  # frozen
    with pytest.raises(TypeError):
        UNetConfig(1)  # keyword-only
    assert UNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({"channels": 3})


def test_unet_rejects_non_config():
    with pytest.raises(ValueError, match="config"):
        UNet({"base_channels": 8})


def _perturbed(module, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module.eval()


def test_self_attention_matches_torch_scaled_dot_product_attention():
    """Single-head attention over H*W positions: softmax(q^T k / sqrt(C)) over the keys, checked against
    torch's own F.scaled_dot_product_attention (independent of the einsum code)."""
    C = 8
    attn = _perturbed(SelfAttention(C, 4))
    x = torch.randn(2, C, 4, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        qkv = attn.qkv(attn.norm(x)).flatten(2)  # (B, 3C, HW): channels [q | k | v]
        q, k, v = (qkv[:, i * C:(i + 1) * C].transpose(1, 2) for i in range(3))  # (B, HW, C) each
        h = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(C), softmax over keys
        expected = x + attn.proj(h.transpose(1, 2).reshape(x.shape))
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_resblock_follows_its_docstring():
    """h = conv(SiLU(GN(x))) + Linear(SiLU(emb)); out = skip(x) + conv(SiLU(GN(h))) (dropout off)."""
    blk = _perturbed(ResBlock(8, 16, 12, dropout=0.0, num_groups=4))
    g = torch.Generator().manual_seed(2)
    x, emb = torch.randn(2, 8, 6, 6, generator=g), torch.randn(2, 12, generator=g)
    with torch.no_grad():
        h = F.conv2d(F.silu(F.group_norm(x, 4, blk.norm1.weight, blk.norm1.bias)), blk.conv1.weight, blk.conv1.bias, padding=1)
        h = h + F.linear(F.silu(emb), blk.emb_proj.weight, blk.emb_proj.bias)[:, :, None, None]
        h = F.conv2d(F.silu(F.group_norm(h, 4, blk.norm2.weight, blk.norm2.bias)), blk.conv2.weight, blk.conv2.bias, padding=1)
        expected = F.conv2d(x, blk.skip.weight, blk.skip.bias) + h
        torch.testing.assert_close(blk(x, emb), expected, rtol=1e-5, atol=1e-5)


def test_upsample_is_nearest_neighbour():
    up = Upsample(2)
    with torch.no_grad():  # make the 3 x 3 conv the identity, to see the interpolation alone
        up.conv.weight.zero_()
        up.conv.bias.zero_()
        for c in range(2):
            up.conv.weight[c, c, 1, 1] = 1.0
    x = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = up(x)
    torch.testing.assert_close(out, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3), rtol=0, atol=1e-6)
