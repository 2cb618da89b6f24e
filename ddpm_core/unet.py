"""The noise-prediction network eps_theta(x_t, t): a small U-Net, eq. {eq}`eq-loss-simple`.

The design follows Ho et al. (2020, appendix B) and the ``improved-diffusion`` code, scaled
down for 32 x 32 digits on a CPU:

* a sinusoidal embedding of t, eq. {eq}`eq-time-embedding`, followed by a two-layer MLP;
* residual blocks (GroupNorm, SiLU, 3 x 3 convolution, twice) that add the time embedding
  between the two convolutions, so that every block knows how noisy its input is;
* optional self-attention at chosen feature-map sizes;
* a contracting path and an expanding path joined by skip connections (concatenation).

One change makes it cheap enough to train on a laptop CPU: with ``patch_size=2`` every
2 x 2 block of pixels is stacked on the channel axis before the first convolution
(``pixel_unshuffle``: (B, 1, 32, 32) -> (B, 4, 16, 16)) and unstacked after the last one
(``pixel_shuffle``), so the whole network works on a 16 x 16 grid, about four times
fewer operations. ``patch_size=1`` is the plain U-Net of Ho et al.

Timestep convention: the paper's t = 1..T. The network itself never needs T: it only sees
t through its embedding, so t is any integer tensor of shape (B,).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .validation import check_floating, check_int


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """Shape of the U-Net. The defaults give about 1.1 million parameters.

    Attributes:
        image_channels: channels of the images (1 for MNIST, 3 for colour).
        image_size: height and width of the images; must be divisible by
            patch_size * 2 ** (len(channel_mults) - 1).
        patch_size: side of the pixel blocks stacked on the channel axis at the input
            (1: none; 2: a 32 x 32 image becomes a 16 x 16 grid of 4-channel cells).
        base_channels: channels after the first convolution.
        channel_mults: one entry per resolution level; level i has
            ``base_channels * channel_mults[i]`` channels. Each level after the first halves
            the grid (16 -> 8 -> 4 for three levels and a 16 x 16 grid).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_resolutions: grid sizes (e.g. ``(8,)``) whose levels get self-attention.
        dropout: dropout probability inside the residual blocks.
        num_groups: groups of every GroupNorm; must divide every level's channel count.
        num_classes: classes of a class-conditional network, eps_theta(x_t, t, y) (0: none).
            Label ``num_classes`` itself stands for "no label", which classifier-free
            guidance needs (:class:`~ddpm_core.guidance.ClassifierFreeGuided`).
    """

    image_channels: int = 1
    image_size: int = 32
    patch_size: int = 2
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (8,)
    dropout: float = 0.1
    num_groups: int = 8
    num_classes: int = 0

    def __post_init__(self) -> None:
        for name in ("image_channels", "image_size", "patch_size", "base_channels", "num_res_blocks", "num_groups"):
            check_int(name, getattr(self, name), 1)
        check_int("num_classes", self.num_classes, 0)
        for name in ("channel_mults", "attention_resolutions"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
                raise ValueError(f"{name} must be a tuple of integers >= 1, got {value!r}")
        if len(self.channel_mults) == 0:
            raise ValueError("channel_mults must have at least one level, got ()")
        divisor = self.patch_size * 2 ** (len(self.channel_mults) - 1)
        if self.image_size % divisor != 0:
            raise ValueError(
                f"image_size must be divisible by patch_size * 2 ** (len(channel_mults) - 1) = {divisor}, "
                f"got image_size={self.image_size}"
            )
        sizes = self.grid_sizes()
        for r in self.attention_resolutions:
            if r not in sizes:
                raise ValueError(f"attention_resolutions must be among the feature-map sizes {sizes}, got {r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.num_groups != 0:
                raise ValueError(
                    f"num_groups must divide every level's channels base_channels * mult; "
                    f"{self.num_groups} does not divide {self.base_channels} * {mult}"
                )

    def grid_sizes(self) -> list[int]:
        """Side of the feature maps at each level, e.g. [16, 8, 4]."""
        return [self.image_size // self.patch_size // 2**i for i in range(len(self.channel_mults))]

    def to_dict(self) -> dict:
        """The fields as a JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown UNetConfig fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the timestep, eq. {eq}`eq-time-embedding` (Vaswani et al., 2017).

    With h = dim / 2 and frequencies w_i = 10000^(-i / h) for i = 0..h-1:

        emb(t) = [sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})]

    Nearby t get nearby vectors, and the fast and slow frequencies let the network tell
    apart both t = 3 from t = 4 and t = 300 from t = 900.

    Args:
        t: timesteps (the paper's 1..T), integer or float tensor of shape (B,).
        dim: size of the embedding, an even integer >= 2.

    Returns:
        float32 tensor of shape (B, dim).
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2 != 0:
        raise ValueError(f"dim must be an even integer >= 2, got {dim!r}")
    if not isinstance(t, torch.Tensor) or t.dim() != 1:
        raise ValueError(f"t must be a 1-d tensor of shape (B,), got {t!r}")
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)  # (h,)
    angles = t.float()[:, None] * freqs[None, :]  # (B, h)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (B, dim)


def _zero(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters, so that a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))) + Linear(SiLU(emb)); out = skip(x) + conv(dropout(SiLU(GN(h))))."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, num_groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(num_groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        # A 1 x 1 convolution matches the channels of the skip path when they change.
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # time: (B, out_ch) -> (B, out_ch, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the H * W positions of a feature map, with a residual."""

    def __init__(self, channels: int, num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(dim=1)  # each (B, C, HW)
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(C), dim=-1)  # (B, HW, HW)
        h = torch.einsum("bij,bcj->bci", weights, v).reshape(B, C, H, W)  # (B, C, H, W)
        return x + self.proj(h)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3 x 3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W (nearest neighbour), then a 3 x 3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Level(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, config: UNetConfig, attention: bool):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, config.dropout, config.num_groups)
        self.attn = SelfAttention(out_ch, config.num_groups) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """eps_theta(x_t, t): predicts the noise eps that produced x_t, eq. {eq}`eq-loss-simple`.

    Args:
        config: a :class:`UNetConfig` (the default one if not given).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        config = UNetConfig() if config is None else config
        if not isinstance(config, UNetConfig):
            raise ValueError(f"config must be a UNetConfig, got {type(config).__name__}")
        self.config = config
        base = config.base_channels
        emb_dim = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        cells = config.image_channels * config.patch_size**2  # channels of one grid cell
        self.conv_in = nn.Conv2d(cells, base, 3, padding=1)

        # Contracting path. skip_channels records the channels of every tensor pushed as a
        # skip connection, in order, so that the expanding path knows what it will receive.
        self.down = nn.ModuleList()
        skip_channels = [base]
        ch, size = base, config.grid_sizes()[0]
        for level, mult in enumerate(config.channel_mults):
            for _ in range(config.num_res_blocks):
                self.down.append(Level(ch, base * mult, emb_dim, config, size in config.attention_resolutions))
                ch = base * mult
                skip_channels.append(ch)
            if level != len(config.channel_mults) - 1:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)
                size //= 2

        self.mid1 = ResBlock(ch, ch, emb_dim, config.dropout, config.num_groups)
        self.mid_attn = SelfAttention(ch, config.num_groups)
        self.mid2 = ResBlock(ch, ch, emb_dim, config.dropout, config.num_groups)

        # Expanding path: one more block per level than on the way down, each taking one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            for i in range(config.num_res_blocks + 1):
                in_ch = ch + skip_channels.pop()
                self.up.append(Level(in_ch, base * mult, emb_dim, config, size in config.attention_resolutions))
                ch = base * mult
            if level != 0:
                self.up.append(Upsample(ch))
                size *= 2

        self.norm_out = nn.GroupNorm(config.num_groups, ch)
        self.conv_out = _zero(nn.Conv2d(ch, cells, 3, padding=1))
        # A class-conditional network adds an embedding of the label y (row num_classes: no label)
        # to that of t. Created last, so that an unconditional network's weights are what they were.
        self.label_embedding = nn.Embedding(config.num_classes + 1, emb_dim) if config.num_classes else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the noise in ``x``.

        Args:
            x: noisy images x_t, floating tensor of shape (B, C, H, W) with C and H = W as
                in the config.
            t: timesteps in 1..T (the paper's convention), integer tensor of shape (B,).
            y: class labels in 0..num_classes, integer tensor of shape (B,), for a
                class-conditional network (``num_classes`` or None: no label).

        Returns:
            eps_hat, same shape as ``x``.
        """
        cfg = self.config
        check_floating("x", x)
        if x.dim() != 4 or tuple(x.shape[1:]) != (cfg.image_channels, cfg.image_size, cfg.image_size):
            raise ValueError(
                f"x must have shape (B, {cfg.image_channels}, {cfg.image_size}, {cfg.image_size}), got {tuple(x.shape)}"
            )
        if not isinstance(t, torch.Tensor) or torch.is_floating_point(t) or t.dtype == torch.bool:
            raise ValueError(f"t must be an integer tensor of timesteps in 1..T, got {t!r}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape (B,) = ({x.shape[0]},), got {tuple(t.shape)}")

        emb = self.time_mlp(sinusoidal_embedding(t, cfg.base_channels).to(x.dtype))  # (B, 4 * base)
        if cfg.num_classes:
            emb = emb + self.label_embedding(self._labels(y, x.shape[0], x.device))  # (B, 4 * base)
        elif y is not None:
            raise ValueError("y must be None: this network is not class-conditional (num_classes = 0)")
        h = F.pixel_unshuffle(x, cfg.patch_size)  # (B, C p^2, H / p, W / p) with p = patch_size
        h = self.conv_in(h)  # (B, base, H / p, W / p)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, Level) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)  # (B, ch, smallest grid, smallest grid)
        for layer in self.up:
            if isinstance(layer, Level):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)  # skip by concatenation on channels
            else:
                h = layer(h)
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B, C p^2, H / p, W / p)
        return F.pixel_shuffle(h, cfg.patch_size)  # (B, C, H, W)


    def _labels(self, y: torch.Tensor | None, batch_size: int, device: torch.device) -> torch.Tensor:
        """``y`` checked, or "no label" (``num_classes``) for every image when it is None."""
        n = self.config.num_classes
        if y is None:
            return torch.full((batch_size,), n, dtype=torch.long, device=device)
        if not isinstance(y, torch.Tensor) or torch.is_floating_point(y) or y.dtype == torch.bool or y.shape != (batch_size,):
            raise ValueError(f"y must be an integer tensor of shape ({batch_size},), got {y!r}")
        return y


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["UNetConfig", "UNet", "sinusoidal_embedding", "count_parameters"]
