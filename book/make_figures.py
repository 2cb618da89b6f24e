"""Draw the introduction's figure of the whole chain: `python book/make_figures.py`.

Top row: a real digit diffused by the forward process q. Bottom row: the reverse process
p_theta of the shipped model (ddpm_core/assets/mnist_ddpm.safetensors) turning noise into a
digit. Writes book/images/chain.png.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import ddpm_core as dc
from ddpm_core.data import load_mnist_5k
from ddpm_core.plotting import BOOK_DPI, FIG_WIDTH, image_grid, use_book_style

STEPS = [0, 50, 100, 200, 300, 500, 700, 1000]


def main(out: Path = Path(__file__).parent / "images" / "chain.png") -> None:
    torch.manual_seed(0)
    digits, labels = load_mnist_5k("train")
    x0 = digits[labels == 3][:1]  # (1, 1, 32, 32)
    model, schedule = dc.load_pretrained()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    forward = [x0 if t == 0 else dc.q_sample(schedule, x0, t, noise) for t in STEPS]
    _, chain = dc.p_sample_loop(schedule, model, (1, 1, 32, 32), generator=torch.Generator().manual_seed(3),
                                return_intermediates=True)
    reverse = [chain[schedule.T - t] for t in reversed(STEPS)]  # chain[i] is x_{T-i}

    use_book_style()  # the chapters' figure style: shown FIG_WIDTH * BOOK_DPI px wide (intro.md's :width:)
    fig, axes = plt.subplots(2, len(STEPS), figsize=(FIG_WIDTH, 2.6))
    for col, t in enumerate(STEPS):
        axes[0, col].imshow(image_grid(forward[col]), cmap="gray", vmin=0, vmax=255)
        axes[0, col].set_title(f"t = {t}", fontsize=10)
        t_rev = list(reversed(STEPS))[col]
        axes[1, col].imshow(image_grid(reverse[col]), cmap="gray", vmin=0, vmax=255)
        axes[1, col].set_title(f"t = {t_rev}", fontsize=10)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.text(0.01, 0.70, "forward q\n(adds\nnoise)", fontsize=10, ha="left")
    fig.text(0.01, 0.22, "reverse p$_\\theta$\n(removes\nit)", fontsize=10, ha="left")
    fig.subplots_adjust(left=0.15, right=0.995, top=0.9, bottom=0.02, hspace=0.35, wspace=0.08)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=2 * BOOK_DPI, metadata={"Software": None})  # sharp on high-DPI screens
    print("wrote", out)


if __name__ == "__main__":
    main()
