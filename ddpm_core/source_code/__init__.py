"""The source document's code, kept as an exhibit: errors included, and not part of the library.

The source document ("深度学习——DDPM") ends with a PyTorch script that trains a U-Net on
MNIST and samples from it. This package keeps that script so that the book can run it and
show, with evidence, what is wrong with it. Its functions are the source's, with their bugs
and choices kept: do not use them for anything else. No module of ``ddpm_core`` imports this
package; ``ddpm_core`` has the corrected versions. Every kept error is marked in the code
with ``# SOURCE ISSUE n`` and listed below; chapter 6 (``notebooks/06_code.ipynb``) and
the errata (``book/errata.md``, section "Code") correct each one.

The script is split along its seams, each module keeping the source's order:

* :mod:`~ddpm_core.source_code.process`: the schedule, the forward process, the loss and
  the sampler;
* :mod:`~ddpm_core.source_code.network`: the network, ``SimpleUnet``;
* :mod:`~ddpm_core.source_code.training`: the data set and the training loop;
* :mod:`~ddpm_core.source_code.main_block`: what the ``__main__`` block binds.

Every public name is imported here, so ``import ddpm_core.source_code as src`` then
``src.get_loss`` and the like reach them all.

What had to change to make the script importable, and nothing else:

* the ``__main__`` block's schedule lines and settings (T, betas, ..., device, model) are
  the body of :func:`make_source_globals`; :func:`use_source_globals` binds them as the
  globals that the source's functions read (see issue 1);
* the loop of ``sample_plot_image`` is :func:`source_sample_loop`, which returns the
  images the source plots and, if given a ``subplot`` function, calls it where the source
  calls ``plt.subplot``, with the same arguments; the training loop is :func:`source_train`,
  which returns the losses and samples the source prints and plots;
* the other plotting calls and helpers are left out, and torchvision is imported inside the
  one function that needs it.

Timesteps: the source indexes its arrays by i = 0..T-1, which is the paper's t = i + 1
(the book's ``NoiseSchedule`` is indexed by t = 1..T, with entry 0 for x_0).

Problems found, each with a check that was run (tests/test_source_code.py asserts each one):

1. The functions read globals that exist only when the file runs as a script. Imported,
   ``forward_diffusion_sample`` raises ``NameError: name 'sqrt_alphas_cumprod' is not
   defined``, ``get_loss`` raises ``NameError: name 'device' is not defined``. The sampler
   calls the global ``model``, so it cannot be given a model as an argument.
2. ``sample_timestep`` tests ``if t == 0`` on a tensor of shape (B,): with a batch of two,
   ``RuntimeError: Boolean value of Tensor with more than one value is ambiguous``. The
   sampler can only draw one image at a time.
3. BatchNorm in the denoiser, and no ``model.eval()`` anywhere. In train mode, replacing
   the other three images of a batch changed the output for image 0 by up to 0.46 (its
   largest output is 0.48); eval-mode outputs differed from train-mode ones by up to 0.49;
   one sampling step (under ``no_grad``) moved the running means by up to 0.024 and counted
   as a training batch (``num_batches_tracked`` + 1). A single 16 x 16 image cannot even
   pass in train mode ("Expected more than 1 value per channel when training"); at 32 x 32
   the 2 x 2 bottleneck normalises each channel over 4 numbers.
4. The training loop samples a whole chain every 5 steps: in 6 training steps the model
   was called 6 times to train and 600 times to sample (300 per chain). In CPU time on one
   thread, one training step (16 images, forward and backward) took 2.6 s and one sampling
   step 0.13 s: 39 s of sampling per 13 s of training, 75 % of the time.
5. The loss is L1, not the paper's squared error (eq. {eq}`eq-loss-simple`): with a model
   that predicts 0, ``get_loss`` gives 0.800 = E|eps| (sqrt(2/pi) = 0.798), where L_simple
   gives E[eps^2] = 1.
6. T = 300 with Ho et al.'s endpoints (chosen for T = 1000) leaves alphabar_T = 0.0481,
   so x_T keeps sqrt(alphabar_T) = 0.219 of the image (T = 1000: 0.0064). The prior term
   L_T = KL(q(x_T | x_0) || N(0, I)) is 0.034 bits/dim on MNIST (T = 1000: 0.00003), and
   the mean pixel of x_T is -0.16 +- 0.03 in training but 0 +- 0.03 where sampling starts.
7. The sampler clamps x_t to [-1, 1] after every step, but x_t is noisy and leaves that
   range (32 % of MNIST's x_t pixels at i = 299). With the exact denoiser of N(0, 0.3^2)
   pixel data (16,384 pixels), the source's loop returns variance 0.0770, against 0.0869 for
   the same loop without the clamp and 0.0863 predicted by
   :func:`ddpm_core.toy.gaussian_sampler_variance` (standard error 0.0010).
8. SimpleUnet has 62,437,601 parameters to model 32 x 32 grey digits, more than Ho et
   al.'s CIFAR-10 model for 32 x 32 colour images (35.7M, their ``scripts/run_cifar.py``).
9. The time embedding reaches each block through ReLU(Linear(.)), so it can only add a
   non-negative shift per channel; at initialisation (seed 0) 173 of the 2,880 block channels get
   no time signal at any t in 0..299.
10. The first up block concatenates the bottleneck with itself (the first ``residual_x`` is
    ``x``, the same tensor), so half of its 9,437,184 input weights duplicate the other
    half; and there is no skip connection at 32 x 32 (the skips are at 16, 8, 4 and 2).
11. ``torchvision.datasets.MNIST`` without ``download=True``: in a fresh folder
    ``RuntimeError: Dataset not found. You can use download=True to download it``.
12. The test set is concatenated into the training set: with 3 training and 2 test files'
    digits on disk, the data set has 5 items, the 2 test digits included. Nothing is held
    out to measure overfitting.
13. SimpleUnet only accepts sizes divisible by 16 (28 x 28 digits raise ``RuntimeError:
    Sizes of tensors must match``), which is why the digits are resized to 32 x 32, i.e.
    resampled, instead of padded.
14. The training recipe is far from the paper's (read from the code, not run): one epoch
    of 70,000 // 16 = 4,375 steps of 16 images (the paper, CIFAR-10: 800,000 steps of 128),
    Adam at lr 1e-3 (Ho et al.'s ``run_cifar.py``: 2e-4 after 5,000 warm-up steps), no
    EMA of the weights, no gradient clipping (theirs: norm 1), no dropout (theirs: 0.1).
15. The plot of the chain is reversed and incomplete: panels 10, 9, ..., 1 hold steps 270,
    240, ..., 0 (the finished digit on the left), x_T is never shown, and T < 10 makes the
    step size 0 (``ZeroDivisionError``).
16. The comment "mean + variance" in ``forward_diffusion_sample`` should say standard
    deviation; the code is right.

Checked and not a problem: the offset i = t - 1 is used consistently in training and
sampling (alphas_cumprod[0] = 0.9999 = the paper's alphabar_1; posterior_variance[i] is
the paper's beta-tilde_{i+1} to 1.3e-8); the float32 schedule is within 8.3e-5 (relative)
of float64; the embedding's divisor ``half_dim - 1`` and its [sin, cos] order are those of
Ho et al.'s code; the sampler's mean is eq. {eq}`eq-mu-theta`, and without the clamp the
loop matches the exact prediction (issue 7).
"""

from .main_block import GLOBAL_NAMES, SourceGlobals, clear_source_globals, make_source_globals, use_source_globals
from .network import Block, SimpleUnet, SinusoidalPositionEmbeddings
from .process import (
    forward_diffusion_sample,
    get_index_from_list,
    get_loss,
    linear_beta_schedule,
    sample_timestep,
    source_sample_loop,
)
from .training import load_transformed_dataset, source_train

__all__ = [
    "GLOBAL_NAMES",
    "SourceGlobals",
    "make_source_globals",
    "use_source_globals",
    "clear_source_globals",
    "linear_beta_schedule",
    "get_index_from_list",
    "forward_diffusion_sample",
    "load_transformed_dataset",
    "Block",
    "SinusoidalPositionEmbeddings",
    "SimpleUnet",
    "get_loss",
    "sample_timestep",
    "source_sample_loop",
    "source_train",
]
