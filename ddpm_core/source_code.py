"""The source document's code, kept as it is so that the book can run it and show its problems.

The source document ("深度学习——DDPM") ends with a PyTorch script that trains a U-Net on
MNIST and samples from it. This module reproduces it so that the book can run it and show,
with evidence, what is wrong with it. The functions are the source's, in its order, with
its bugs and choices kept: do not use them for anything else (``ddpm_core`` has the
corrected versions). Every kept problem is marked in the code with ``# SOURCE ISSUE n``.

What had to change to make the file importable, and nothing else:

* the ``__main__`` block's schedule lines and settings (T, betas, ..., device, model) are
  the body of :func:`make_source_globals`; :func:`use_source_globals` binds them to the
  module globals that the source's functions read (see issue 1);
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

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Adam

# SOURCE ISSUE 1: the functions below read module globals (T, betas, sqrt_alphas_cumprod,
# ..., device, model) that the source defines only under ``if __name__ == "__main__":``.
# Importing the file leaves them undefined. Here they come from make_source_globals() and
# use_source_globals(), which run the source's __main__ lines; until then the names below
# are unbound, exactly as in the imported source.
GLOBAL_NAMES = (
    "T",
    "betas",
    "alphas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_recip_alphas",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "posterior_variance",
    "IMG_SIZE",
    "BATCH_SIZE",
    "device",
    "model",
)


@dataclass(frozen=True, kw_only=True, eq=False)  # eq=False: tensors have no truth value
class SourceGlobals:
    """The values the source's ``__main__`` block binds to module globals.

    Index i of every array is the source's timestep i in 0..T-1, which is the paper's
    t = i + 1 (the source's own comment: "The t's are offset from the t's in the paper").
    Unlike :class:`ddpm_core.NoiseSchedule` these arrays have length T, are float32, and
    have no entry for x_0.
    """

    T: int
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_recip_alphas: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor
    IMG_SIZE: int
    BATCH_SIZE: int
    device: str
    model: nn.Module | None


def make_source_globals(
    T: int = 300, *, img_size: int = 32, batch_size: int = 16, device: str = "cpu", model: nn.Module | None = None
) -> SourceGlobals:
    """Run the schedule lines of the source's ``__main__`` block and return what they bind.

    Args:
        T: number of diffusion steps (the source's value: 300).
        img_size: the source's ``IMG_SIZE`` (32).
        batch_size: the source's ``BATCH_SIZE`` (16).
        device: the source's ``device`` ("cuda" if available there, else "cpu").
        model: the network the source binds to the global ``model`` (a :class:`SimpleUnet`
            there); :func:`sample_timestep` calls it.

    Returns:
        the values, to pass to :func:`use_source_globals`.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    for name, value in (("img_size", img_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    # The source's lines, unchanged (float32, length T, index i = paper's t = i + 1):
    betas = linear_beta_schedule(timesteps=T)
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, axis=0)
    alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - alphas_cumprod)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    return SourceGlobals(
        T=T,
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_recip_alphas=sqrt_recip_alphas,
        sqrt_alphas_cumprod=sqrt_alphas_cumprod,
        sqrt_one_minus_alphas_cumprod=sqrt_one_minus_alphas_cumprod,
        posterior_variance=posterior_variance,
        IMG_SIZE=img_size,
        BATCH_SIZE=batch_size,
        device=device,
        model=model,
    )


def use_source_globals(g: SourceGlobals) -> None:
    """Bind the module globals the source's functions read, as its ``__main__`` block does.

    Args:
        g: the values, from :func:`make_source_globals`.
    """
    if not isinstance(g, SourceGlobals):
        raise ValueError(f"g must be a SourceGlobals from make_source_globals(), got {type(g).__name__}")
    global T, betas, alphas, alphas_cumprod, alphas_cumprod_prev, sqrt_recip_alphas
    global sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, posterior_variance
    global IMG_SIZE, BATCH_SIZE, device, model
    T = g.T
    betas = g.betas
    alphas = g.alphas
    alphas_cumprod = g.alphas_cumprod
    alphas_cumprod_prev = g.alphas_cumprod_prev
    sqrt_recip_alphas = g.sqrt_recip_alphas
    sqrt_alphas_cumprod = g.sqrt_alphas_cumprod
    sqrt_one_minus_alphas_cumprod = g.sqrt_one_minus_alphas_cumprod
    posterior_variance = g.posterior_variance
    IMG_SIZE = g.IMG_SIZE
    BATCH_SIZE = g.BATCH_SIZE
    device = g.device
    model = g.model


def clear_source_globals() -> None:
    """Unbind the globals again: the state of the source file when it is imported."""
    for name in GLOBAL_NAMES:
        globals().pop(name, None)


# ----------------------------------------------------------------------------------------
# The source's functions, in its order. Plotting (show_images, show_tensor_image and the
# matplotlib calls of sample_plot_image) is left out; nothing else is changed except where
# a comment says so.
# ----------------------------------------------------------------------------------------


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


def load_transformed_dataset(IMG_SIZE):
    # torchvision is imported here, not at the top as in the source, so that the rest of
    # this module works without it.
    import torchvision
    from torchvision import transforms

    data_transforms = [
        # SOURCE ISSUE 13: resized (resampled), not padded, because SimpleUnet only takes
        # sizes divisible by 16.
        transforms.Resize((IMG_SIZE, IMG_SIZE)),
        transforms.ToTensor(), # Scales data into [0,1]
        transforms.Lambda(lambda t: (t * 2) - 1) # Scale between [-1, 1]
    ]
    data_transform = transforms.Compose(data_transforms)

    # SOURCE ISSUE 11: no download=True, so on a fresh machine this raises
    # RuntimeError("Dataset not found. You can use download=True to download it").
    train = torchvision.datasets.MNIST(root="./Data",transform=data_transform,train=True)
    test = torchvision.datasets.MNIST(root="./Data", transform=data_transform, train=False)

    # SOURCE ISSUE 12: the test set is merged into the training data; nothing is held out.
    return torch.utils.data.ConcatDataset([train, test])


class Block(nn.Module):
    def __init__(self, in_ch, out_ch, time_emb_dim, up=False):
        super().__init__()
        self.time_mlp =  nn.Linear(time_emb_dim, out_ch)
        if up:
            self.conv1 = nn.Conv2d(2*in_ch, out_ch, 3, padding=1)
            self.transform = nn.ConvTranspose2d(out_ch, out_ch, 4, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
            self.transform = nn.Conv2d(out_ch, out_ch, 4, 2, 1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # SOURCE ISSUE 3: BatchNorm in the denoiser. In train mode (never left: the source
        # calls no model.eval()) each output depends on the other images of the batch, and
        # every sampling call overwrites the running statistics.
        self.bnorm1 = nn.BatchNorm2d(out_ch)
        self.bnorm2 = nn.BatchNorm2d(out_ch)
        self.relu  = nn.ReLU()

    def forward(self, x, t):
        # First Conv
        h = self.bnorm1(self.relu(self.conv1(x)))
        # Time embedding
        # SOURCE ISSUE 9: the ReLU makes the time signal a non-negative shift, and channels
        # whose Linear output is negative for every t get no time signal at all.
        time_emb = self.relu(self.time_mlp(t))
        # Extend last 2 dimensions
        time_emb = time_emb[(..., ) + (None, ) * 2]
        # Add time channel
        h = h + time_emb
        # Second Conv
        h = self.bnorm2(self.relu(self.conv2(h)))
        # Down or Upsample
        return self.transform(h)


class SinusoidalPositionEmbeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        device = time.device
        half_dim = self.dim // 2
        # (Not an issue: the divisor half_dim - 1 and the [sin, cos] order are those of
        # Ho et al.'s get_timestep_embedding.)
        embeddings = math.log(10000) / (half_dim - 1)
        embeddings = torch.exp(torch.arange(half_dim, device=device) * -embeddings)
        embeddings = time[:, None] * embeddings[None, :]
        embeddings = torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)
        # TODO: Double check the ordering here
        return embeddings


class SimpleUnet(nn.Module):
    """
    A simplified variant of the Unet architecture.
    """
    def __init__(self):
        super().__init__()
        image_channels =1   #灰度图为1,彩色图为3
        # SOURCE ISSUE 8: these widths give 62,437,601 parameters for 32 x 32 digits.
        down_channels = (64, 128, 256, 512, 1024)
        up_channels = (1024, 512, 256, 128, 64)
        out_dim = 1   #灰度图为1 ,彩色图为3
        time_emb_dim = 32

        # Time embedding
        self.time_mlp = nn.Sequential(
                SinusoidalPositionEmbeddings(time_emb_dim),
                nn.Linear(time_emb_dim, time_emb_dim),
                nn.ReLU()
            )

        # Initial projection
        self.conv0 = nn.Conv2d(image_channels, down_channels[0], 3, padding=1)

        # Downsample
        self.downs = nn.ModuleList([Block(down_channels[i], down_channels[i+1], \
                                    time_emb_dim) \
                    for i in range(len(down_channels)-1)])
        # Upsample
        self.ups = nn.ModuleList([Block(up_channels[i], up_channels[i+1], \
                                        time_emb_dim, up=True) \
                    for i in range(len(up_channels)-1)])

        # Edit: Corrected a bug found by Jakub C (see YouTube comment)
        self.output = nn.Conv2d(up_channels[-1], out_dim, 1)

    def forward(self, x, timestep):
        # Embedd time
        t = self.time_mlp(timestep)
        # Initial conv
        x = self.conv0(x)
        # Unet
        residual_inputs = []
        for down in self.downs:
            x = down(x, t)
            residual_inputs.append(x)
        # SOURCE ISSUE 10: the last down output is both x and the first "residual", so the
        # first up block concatenates a tensor with itself; and no skip connection carries
        # the 32 x 32 features (the skips are at 16, 8, 4 and 2 pixels).
        for up in self.ups:
            residual_x = residual_inputs.pop()
            # Add residual x as additional channels
            x = torch.cat((x, residual_x), dim=1)
            x = up(x, t)
        return self.output(x)


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


def source_train(dataloader, epochs=1, max_steps=None):
    """The training loop of the source's ``__main__`` block, with its printing and plotting
    replaced by return values.

    It trains the global ``model`` (as the source does), on the global ``device``, and calls
    :func:`source_sample_loop` every 5 steps exactly where the source calls
    ``sample_plot_image``.

    Args:
        dataloader: yields (images, labels) batches of ``BATCH_SIZE`` images.
        epochs: the source's ``epochs = 1``.
        max_steps: stop after this many steps in all (an addition, so the book can run a
            few steps); None runs every epoch in full, as the source does.

    Returns:
        (losses, samples): the loss of every step, and a list of (step, image) pairs, one
        per call of the sampler.
    """
    model.to(device)
    # SOURCE ISSUE 14: lr 1e-3 (the paper: 2e-4), no EMA of the weights, no gradient
    # clipping, and one epoch ("Try more!").
    optimizer = Adam(model.parameters(), lr=0.001)
    losses, samples = [], []
    done = 0

    for epoch in range(epochs):
        for step, batch in enumerate(dataloader):  #由于batch 是包含标签的所以取batch[0]
            if max_steps is not None and done >= max_steps:
                return losses, samples
            optimizer.zero_grad()

            t = torch.randint(0, T, (BATCH_SIZE,), device=device).long()
            loss = get_loss(model, batch[0], t)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            done += 1

            # SOURCE ISSUE 4: every 5 training steps, a 300-step sampling run (with the
            # model still in train mode, see issue 3).
            if epoch % 1 == 0 and step %5== 0:
                img, _ = source_sample_loop(IMG_SIZE)
                samples.append((step, img))
    return losses, samples


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
