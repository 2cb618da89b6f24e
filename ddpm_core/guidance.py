"""Guidance: steer a sampler by extrapolating between two noise predictions.

Two kinds, one formula, eps_w = eps_weak + w (eps_strong - eps_weak):

* :class:`Autoguided`: the weak prediction is an earlier snapshot of the same network;
* :class:`ClassifierFreeGuided` (Ho & Salimans, 2022): one class-conditional network, the
  strong prediction with the requested label y, the weak one with no label:
  eps_w = eps(x_t, t) + w (eps(x_t, t, y) - eps(x_t, t)). ``w = 0`` samples without a label,
  ``w = 1`` with it, ``w > 1`` pushes the samples further toward what distinguishes class y,
  trading their variety for how clearly they belong to it.

Autoguidance (Karras et al., 2024): steer a model away from a weaker version of itself.

A network trained for a few minutes makes errors, and an earlier, weaker snapshot of the same
run makes errors of the same kind, only larger. Extrapolating from the weak prediction through
the strong one, eq. {eq}`eq-autoguidance`,

    eps_w(x_t, t) = eps_guide(x_t, t) + w (eps_theta(x_t, t) - eps_guide(x_t, t)),

moves each step further in the direction in which training improved the model, and so removes
part of the error the strong model still has. ``w = 1`` is the model alone; ``w > 1``
extrapolates. Both networks are unconditional and learned the same distribution; Karras et al.
found that, unlike classifier-free guidance, this does not trade the variety of the samples for
their quality.

The combination has weights w and 1 - w, which sum to 1. x0_hat and the posterior mean are
affine in eps_hat with coefficients that do not depend on the network, so the same weights
carry over: x0_w = x0_guide + w (x0_theta - x0_guide), and likewise for the mean (a test
checks both). Guidance therefore plugs into any sampler as one more ``model(x_t, t)``.
It costs a second network evaluation per step.
"""

from __future__ import annotations


import torch

from .reverse import EpsModel
from .validation import check_int, check_number


class Autoguided(torch.nn.Module):
    """eps_w = eps_guide + w (eps_theta - eps_guide), eq. {eq}`eq-autoguidance`.

    Args:
        model: eps_theta, the network to sample from, called as ``model(x_t, t)``.
        guide: a weaker network for the same data (e.g. an early checkpoint of the same run).
        weight: the guidance weight w, a finite number >= 1 (1: ``model`` alone).
    """

    def __init__(self, model: EpsModel, guide: EpsModel, weight: float):
        super().__init__()
        self.model, self.guide = model, guide
        self.weight = check_number("weight", weight, low=1)  # 1: the model alone

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_model = self.model(x_t, t)
        if self.weight == 1.0:
            return eps_model  # no extrapolation: the guide need not run
        eps_guide = self.guide(x_t, t)
        return eps_guide + self.weight * (eps_model - eps_guide)


class ClassifierFreeGuided(torch.nn.Module):
    """eps_w = eps(x_t, t) + w (eps(x_t, t, y) - eps(x_t, t)): ask a class-conditional network for class y.

    Both predictions come from one network call on a doubled batch (the images with label y,
    then the same images with "no label").

    Args:
        model: a class-conditional :class:`~ddpm_core.unet.UNet` (``config.num_classes`` > 0).
        label: the class y to sample, in 0..num_classes - 1.
        weight: the guidance weight w, a finite number >= 0 (0: no label, 1: the label alone).
    """

    def __init__(self, model: torch.nn.Module, label: int, weight: float):
        super().__init__()
        num_classes = getattr(getattr(model, "config", None), "num_classes", 0)
        if not num_classes:
            raise ValueError("model must be a class-conditional network (a UNet with config.num_classes > 0)")
        self.model, self.num_classes = model, num_classes
        self.label = check_int("label", label, 0, num_classes - 1)
        self.weight = check_number("weight", weight, low=0)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x_t.shape[0]
        y = torch.full((2 * B,), self.label, dtype=torch.long, device=x_t.device)
        y[B:] = self.num_classes  # the second half: no label
        eps_label, eps_none = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), y).chunk(2)
        return eps_none + self.weight * (eps_label - eps_none)


__all__ = ["Autoguided", "ClassifierFreeGuided"]
