"""Where a run computes and in what precision: the device, and mixed precision on it."""

from __future__ import annotations

import torch

from .config import TrainConfig


def resolve_device(cfg: TrainConfig, local_rank: int = 0) -> torch.device:
    """The device a configuration runs on; ``"cuda"`` without a GPU raises ``ValueError``.

    With several processes on one machine, process ``local_rank`` takes GPU number ``local_rank``.
    """
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False")
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda", local_rank) if cuda else torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX instructions).

    Without them torch still runs bf16 on a CPU, but by emulation, which is slower than float32.
    The checks are torch's own (private) ones; a torch without them counts as False.
    """
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and bool(check()) for check in checks)


def resolve_amp(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Autocast dtype (None: off) and whether a gradient scaler is needed.

    ``"auto"``: bf16 where the device computes in it natively: GPUs of compute capability
    >= 8.0, CPUs with AVX512-BF16 or AMX (:func:`cpu_has_native_bf16`). No scaler is needed:
    bf16 has float32's range. Otherwise fp16 with a scaler on a GPU (e.g. a T4), and float32
    on a CPU.
    """
    cuda = device.type == "cuda"
    if cfg.amp == "off":
        return None, False
    if cfg.amp == "fp16":
        if not cuda:
            raise ValueError("amp='fp16' needs a CUDA device (use 'bf16' or 'off' on a CPU)")
        return torch.float16, True
    if cfg.amp == "bf16":
        if cuda and torch.cuda.get_device_capability(device)[0] < 8:
            major, minor = torch.cuda.get_device_capability(device)
            raise ValueError(f"amp='bf16' needs a GPU of compute capability 8.0 or newer; this one is {major}.{minor}, "
                             f"which only emulates bf16, slowly. Use 'fp16' or 'auto'")
        return torch.bfloat16, False
    if not cuda:  # "auto" on a CPU
        return (torch.bfloat16, False) if cpu_has_native_bf16() else (None, False)
    # "auto" on a GPU. Native bf16 needs compute capability 8.0 (Ampere) or newer; older cards
    # such as Colab's T4 (7.5) only emulate it slowly, and torch.cuda.is_bf16_supported()
    # counts emulation as support, so the capability is checked instead.
    native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8
    return (torch.bfloat16, False) if native_bf16 else (torch.float16, True)
