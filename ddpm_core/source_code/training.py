"""The source's data set and training loop, with their errors (issues 4, 11, 12, 13 and 14).

``load_transformed_dataset`` is the source's; ``source_train`` is the training loop of its
``__main__`` block with printing and plotting replaced by return values. Each kept error is
marked ``# SOURCE ISSUE n``; the numbers are those of the package docstring.
"""

from __future__ import annotations

import torch
from torch.optim import Adam

from .process import get_loss, source_sample_loop

# SOURCE ISSUE 1: source_train reads globals (T, BATCH_SIZE, IMG_SIZE, device, model) that
# the source defines only under ``if __name__ == "__main__":``. They are unbound here until
# :func:`ddpm_core.source_code.main_block.use_source_globals` binds them.


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

__all__ = ["load_transformed_dataset", "source_train"]
