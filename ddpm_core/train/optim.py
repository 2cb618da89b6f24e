"""Optimisation: the moving average of the weights, Muon, the optimizer and its learning rate.

* :class:`EMA`: the exponential moving average of the weights that samples use, eq. {eq}`eq-training-ema`;
* :class:`Muon` and :func:`newton_schulz_orthogonalize`: orthogonalised momentum steps for the
  weight matrices (Jordan et al., 2024), Adam for the rest;
* :func:`make_optimizer`: Adam, or Muon, as a configuration asks;
* :func:`lr_at`: the learning rate of each step, a warm-up then an optional cosine decay.
"""

from __future__ import annotations

import math

import torch

from ..validation import check_int, check_number
from .config import TrainConfig


class EMA:
    """Exponential moving average of a model's parameters: theta_ema <- d theta_ema + (1 - d) theta.

    The decay is warmed up as d_n = min(decay, (1 + n) / (10 + n)) after n updates, so that a
    short run is not dominated by the random initial weights (with d = 0.999 and no warm-up,
    the initial weights would still weigh 0.999^2000 = 14% after 2,000 steps).

    Args:
        model: the model whose parameters are averaged (they are copied now).
        decay: the target decay d, in [0, 1).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = check_number("decay", decay, low=0, high=1, high_open=True)
        self.num_updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move every average towards the model's current parameters."""
        d = self.current_decay()
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1.0 - d)  # shadow + (1 - d) (p - shadow)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite ``model``'s parameters with the averages."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])

    def state_dict(self) -> dict:
        """decay, num_updates and the averaged tensors."""
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA state does not match the model's parameters")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


def newton_schulz_orthogonalize(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately the orthogonal factor U V^T of a matrix G = U S V^T, by Newton-Schulz.

    After scaling G to spectral norm <= 1 (dividing by its Frobenius norm), each iteration
    X <- a X + (b A + c A^2) X with A = X X^T applies the odd polynomial
    p(s) = a s + b s^3 + c s^5 to every singular value s and leaves U and V alone. The
    coefficients (a, b, c) = (3.4445, -4.7750, 2.0315) of Jordan et al.'s Muon push every
    s in (0, 1] towards 1 quickly, to roughly [0.7, 1.2] after five steps: close enough to
    U V^T for an optimizer, at the cost of 15 matrix products.

    Args:
        G: a matrix of shape (m, n), or a batch of them, (k, m, n), each treated alone.
        steps: iterations.

    Returns:
        float32, G's shape.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.to(torch.float32)
    X = X / (torch.linalg.matrix_norm(X, keepdim=True) + 1e-7)  # Frobenius norm of each matrix
    transposed = X.shape[-2] > X.shape[-1]
    if transposed:  # iterate on the wide orientation: A = X X^T is the smaller square
        X = X.mT
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X.mT if transposed else X


class Muon(torch.optim.Optimizer):
    """Muon (Jordan et al., 2024) for the groups with ``use_muon=True``, Adam for the others.

    For a weight W of shape (out, in) (a convolution's filters are read as (out, in * k * k)),
    with gradient G and momentum mu:

        M <- mu M + (1 - mu) G,     D = (1 - mu) G + mu M   (Nesterov),
        W <- W - lr * sqrt(max(1, out / in)) * newton_schulz_orthogonalize(D).

    The step replaces D's singular values by about 1, so every direction of the update moves
    the weight by a similar amount, however unequal the gradient's directions are. Matrices
    of the same shape are orthogonalized together, as one batch (fewer, larger products).
    Groups with ``use_muon=False`` (biases, normalisation gains, the first and last layers)
    take plain Adam steps with ``betas`` and ``eps``.
    """

    def __init__(self, param_groups: list[dict], momentum: float = 0.95, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(param_groups, dict(momentum=momentum, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["use_muon"]:
                self._muon_step(group, params)
            else:
                self._adam_step(group, params)

    def _muon_step(self, group: dict, params: list[torch.Tensor]) -> None:
        mu, directions = group["momentum"], []
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum"] = torch.zeros_like(p)
            state["momentum"].lerp_(p.grad, 1 - mu)
            directions.append(p.grad.lerp(state["momentum"], mu).reshape(p.shape[0], -1))  # D, (out, in * k * k)
        by_shape: dict[torch.Size, list[int]] = {}
        for i, d in enumerate(directions):
            by_shape.setdefault(d.shape, []).append(i)
        for (rows, cols), indices in by_shape.items():
            orthogonal = newton_schulz_orthogonalize(torch.stack([directions[i] for i in indices]))
            scale = max(1.0, rows / cols) ** 0.5
            for i, o in zip(indices, orthogonal):
                params[i].add_(o.view_as(params[i]), alpha=-group["lr"] * scale)

    def _adam_step(self, group: dict, params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
            state["step"] += 1
            state["m"].lerp_(p.grad, 1 - beta1)
            state["v"].lerp_(p.grad.square(), 1 - beta2)
            m_hat = state["m"] / (1 - beta1 ** state["step"])
            v_hat = state["v"] / (1 - beta2 ** state["step"])
            p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over every parameter, or (``cfg.optimizer="muon"``) :class:`Muon`.

    With Muon, the weights of 2 or more dimensions take Muon steps at ``cfg.muon_lr``,
    except those of the first and last convolutions (``conv_in``, ``conv_out``), which,
    with every bias and normalisation gain, take Adam steps at ``cfg.lr``. Each group's
    ``lr_scale`` is its peak rate over ``cfg.lr``: :func:`train` sets a group's rate to
    ``lr_at(step, cfg) * lr_scale``.
    """
    if cfg.optimizer == "adam":
        return torch.optim.Adam([{"params": list(model.parameters()), "lr_scale": 1.0}], lr=cfg.lr)
    named = list(model.named_parameters())
    is_muon = [p.dim() >= 2 and not name.startswith(("conv_in.", "conv_out.")) for name, p in named]
    return Muon([
        {"params": [p for (_, p), m in zip(named, is_muon) if m], "use_muon": True, "lr": cfg.muon_lr,
         "lr_scale": cfg.muon_lr / cfg.lr},
        {"params": [p for (_, p), m in zip(named, is_muon) if not m], "use_muon": False, "lr": cfg.lr,
         "lr_scale": 1.0},
    ])


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of step ``step`` (1-based): a linear warm-up to ``cfg.lr``, then ``cfg.lr_decay``.

    Warm-up, eq. {eq}`eq-training-warmup`: lr_n = lr * n / W for n <= W = ``warmup_steps``, as
    in Ho et al. (who warm up for 5,000 steps). After it, ``"none"`` keeps lr; ``"cosine"``,
    eq. {eq}`eq-training-lr`, follows half a cosine from lr down to 0 at n = N = ``steps``:
    lr_n = lr * (1 + cos(pi * (n - W) / (N - W))) / 2.
    """
    check_int("step", step, 1)
    if step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if cfg.lr_decay == "none" or cfg.steps <= cfg.warmup_steps:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / (cfg.steps - cfg.warmup_steps))  # 0 -> 1 after the warm-up
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
