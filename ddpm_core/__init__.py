"""ddpm_core: the mathematics of DDPM (Ho et al., 2020), named after the book's equations.

Timestep convention, everywhere: the paper's t = 1..T. Schedule arrays have length T + 1
and are indexed by t directly; entry 0 stands for x_0 (beta_0 = 0, alphabar_0 = 1).

The package imports the mathematics and the model; training lives in ``ddpm_core.train``
(import it when you train), weights on disk in ``ddpm_core.weights``.
"""

from .forward import q_mean_variance, q_sample, q_step
from .losses import (
    bpd_bound,
    bpd_bound_stratified,
    discretized_gaussian_log_likelihood,
    normal_kl,
    min_snr_weight,
    prior_bpd,
    sample_timesteps,
    simple_loss,
    vb_terms_bpd,
)
from .posterior import posterior_mean_from_eps, predict_x0_from_eps, q_posterior_mean_variance
from .parameterizations import eps_from_score, eps_from_v, eps_from_x0, score_from_eps, v_from_eps, x0_from_v
from .reverse import PMeanVariance, p_mean_variance, p_sample, p_sample_loop
from .schedules import NoiseSchedule, cosine_beta_schedule, extract, linear_beta_schedule
from .unet import UNet, UNetConfig, count_parameters, sinusoidal_embedding
from .ddim import ddim_sample_loop, ddim_timesteps
from .guidance import Autoguided
from .weights import load_pretrained

__version__ = "0.3.0"

__all__ = [
    "NoiseSchedule",
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "extract",
    "q_sample",
    "q_step",
    "q_mean_variance",
    "q_posterior_mean_variance",
    "predict_x0_from_eps",
    "posterior_mean_from_eps",
    "eps_from_x0",
    "v_from_eps",
    "eps_from_v",
    "x0_from_v",
    "score_from_eps",
    "eps_from_score",
    "PMeanVariance",
    "p_mean_variance",
    "p_sample",
    "p_sample_loop",
    "sample_timesteps",
    "simple_loss",
    "min_snr_weight",
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "prior_bpd",
    "vb_terms_bpd",
    "bpd_bound",
    "bpd_bound_stratified",
    "UNet",
    "UNetConfig",
    "count_parameters",
    "sinusoidal_embedding",
    "ddim_sample_loop",
    "ddim_timesteps",
    "Autoguided",
    "load_pretrained",
]
