"""The source's schedule, forward process, loss and sampler, in its order and with its errors.

``linear_beta_schedule``, ``get_index_from_list``, ``forward_diffusion_sample``, ``get_loss``
and ``sample_timestep`` are the source's; ``source_sample_loop`` is the loop of its
``sample_plot_image`` without the plotting. Each kept error is marked ``# SOURCE ISSUE n``;
the numbers are those of the package docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# SOURCE ISSUE 1: the functions below read globals (T, betas, sqrt_alphas_cumprod, ...,
# device, model) that the source defines only under ``if __name__ == "__main__":``. They are
# unbound here until :func:`ddpm_core.source_code.main_block.use_source_globals` binds them.


def linear_beta_schedule(timesteps, start=0.0001, end=0.02):
    # SOURCE ISSUE 6: with the source's T = 300, these endpoints (chosen by Ho et al. for
    # T = 1000) leave alphabar_T = 0.048, so x_T keeps sqrt(0.048) = 0.22 of the image.
    return torch.linspace(start, end, timesteps)


def get_index_from_list(vals, t, x_shape):
    """
    Returns a specific index t of a passed list of values vals
    while considering the batch dimension.
    """
    batch_size = t.shape[0]
    out = vals.gather(-1, t.cpu())
    return out.reshape(batch_size, *((1,) * (len(x_shape) - 1))).to(t.device)


def forward_diffusion_sample(x_0, t, device="cpu"):
    """
    Takes an image and a timestep as input and
    returns the noisy version of it
    """
    noise = torch.randn_like(x_0)
    sqrt_alphas_cumprod_t = get_index_from_list(sqrt_alphas_cumprod, t, x_0.shape)
    sqrt_one_minus_alphas_cumprod_t = get_index_from_list(
        sqrt_one_minus_alphas_cumprod, t, x_0.shape
    )
    # mean + variance
    # SOURCE ISSUE 16: the comment above says "variance"; the code adds the standard
    # deviation sqrt(1 - alphabar_t) times the noise, which is right.
    return sqrt_alphas_cumprod_t.to(device) * x_0.to(device) \
    + sqrt_one_minus_alphas_cumprod_t.to(device) * noise.to(device), noise.to(device)

def get_loss(model, x_0, t):
    # SOURCE ISSUE 1: `device` is a global bound only under __main__.
    x_noisy, noise = forward_diffusion_sample(x_0, t, device)
    noise_pred = model(x_noisy, t)
    # SOURCE ISSUE 5: L1, not the paper's squared error L_simple.
    return F.l1_loss(noise, noise_pred)


@torch.no_grad()
def sample_timestep(x, t):
    """
    Calls the model to predict the noise in the image and returns
    the denoised image.
    Applies noise to this image, if we are not in the last step yet.
    """
    betas_t = get_index_from_list(betas, t, x.shape)
    sqrt_one_minus_alphas_cumprod_t = get_index_from_list(
        sqrt_one_minus_alphas_cumprod, t, x.shape
    )

    sqrt_recip_alphas_t = get_index_from_list(sqrt_recip_alphas, t, x.shape)

    # Call model (current image - noise prediction)
    # SOURCE ISSUE 1: `model` is the global bound under __main__, not an argument.
    model_mean = sqrt_recip_alphas_t * (
        x - betas_t * model(x, t) / sqrt_one_minus_alphas_cumprod_t
    )

    posterior_variance_t = get_index_from_list(posterior_variance, t, x.shape)

    # SOURCE ISSUE 2: `t == 0` is a tensor of shape (B,); `if` on it raises for B > 1, so
    # this sampler draws one image at a time.
    if t == 0:
        # As pointed out by Luis Pereira (see YouTube comment)
        # The t's are offset from the t's in the paper
        return model_mean
    else:
        noise = torch.randn_like(x)
        return model_mean + torch.sqrt(posterior_variance_t) * noise


@torch.no_grad()
def source_sample_loop(IMG_SIZE, num_images=10, subplot=None):
    """The loop of the source's ``sample_plot_image`` without the plotting.

    ``subplot``, if given, is called where the source calls ``plt.subplot``, with the same
    arguments (rows, columns, panel), so that a caller can see where each image is drawn.

    Returns:
        (img, snapshots): the final image (1, 1, IMG_SIZE, IMG_SIZE) and a dict
        {i: image after step i} for the steps the source plots (i % (T // num_images) == 0).
    """
    # Sample noise
    img_size = IMG_SIZE
    img = torch.randn((1, 1, img_size, img_size), device=device)   #生成第T步的图片
    stepsize = int(T/num_images)
    snapshots = {}

    for i in range(0,T)[::-1]:
        t = torch.full((1,), i, device=device, dtype=torch.long)
        img = sample_timestep(img, t)
        # Edit: This is to maintain the natural range of the distribution
        # SOURCE ISSUE 7: x_t is noisy and is meant to leave [-1, 1]; clamping it at every
        # step changes its distribution (only x_0, or the estimate of x_0, lies in [-1, 1]).
        img = torch.clamp(img, -1.0, 1.0)
        if i % stepsize == 0:
            # The source calls plt.subplot here. SOURCE ISSUE 15: its panel puts step 270 in
            # panel 10 and step 0 in panel 1, so the row reads from the finished digit back
            # to noise, and x_T is never shown.
            if subplot is not None:
                subplot(1, num_images, int(i/stepsize)+1)
            snapshots[i] = img.detach().cpu()
    return img, snapshots

__all__ = [
    "linear_beta_schedule",
    "get_index_from_list",
    "forward_diffusion_sample",
    "get_loss",
    "sample_timestep",
    "source_sample_loop",
]
