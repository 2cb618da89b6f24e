"""A class-conditional network and classifier-free guidance: eps_theta(x_t, t, y), trained with
labels dropped at random, sampled with eps_w = eps(x_t, t) + w (eps(x_t, t, y) - eps(x_t, t))."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from ddpm_core.guidance import ClassifierFreeGuided
from ddpm_core.train import TrainConfig, train
from ddpm_core.train.batches import BatchStream
from ddpm_core.unet import UNet, UNetConfig
from ddpm_core.weights import save_model

NET = UNetConfig(patch_size=2, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(),
                 num_groups=4, dropout=0.0, num_classes=10)


def conditional_net(seed: int = 0) -> UNet:
    """A class-conditional network with random weights everywhere (its output layer included)."""
    torch.manual_seed(seed)
    net = UNet(NET).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


X, T = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 400, 1000])


def test_no_label_is_the_label_num_classes():
    net = conditional_net()
    with torch.no_grad():
        assert torch.equal(net(X, T), net(X, T, torch.full((3,), 10)))
        assert not torch.equal(net(X, T, torch.tensor([1, 2, 3])), net(X, T))


def test_an_unconditional_network_refuses_a_label():
    with pytest.raises(ValueError, match="not class-conditional"):
        UNet(UNetConfig(base_channels=8, num_groups=4))(X, T, torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("weight", [0.0, 1.0, 3.0])
def test_classifier_free_guidance_is_its_formula(weight):
    net = conditional_net()
    guided = ClassifierFreeGuided(net, label=7, weight=weight)
    with torch.no_grad():
        eps_label, eps_none = net(X, T, torch.full((3,), 7)), net(X, T)
        torch.testing.assert_close(guided(X, T), eps_none + weight * (eps_label - eps_none), rtol=1e-4, atol=1e-5)  # one batch of 6 vs two of 3


def test_classifier_free_guidance_refuses_what_is_not_allowed():
    with pytest.raises(ValueError, match="class-conditional network"):
        ClassifierFreeGuided(UNet(UNetConfig(base_channels=8, num_groups=4)), 1, 1.0)
    with pytest.raises(ValueError, match=r"label must be an integer in 0..9, got 10"):
        ClassifierFreeGuided(conditional_net(), 10, 1.0)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        ClassifierFreeGuided(conditional_net(), 1, -1.0)


def test_labels_are_dropped_at_the_rate_asked_and_reproducibly():
    images, labels = torch.zeros(50, 1, 4, 4), torch.arange(50) % 10
    stream = BatchStream(images, 4000, False, torch.Generator().manual_seed(0), labels=labels, label_dropout=0.25,
                         no_label=10)
    _, drawn = stream.next_with_labels()
    assert abs(float((drawn == 10).float().mean()) - 0.25) < 0.03
    again = BatchStream(images, 4000, False, torch.Generator().manual_seed(0), labels=labels, label_dropout=0.25,
                        no_label=10)
    assert torch.equal(again.next_with_labels()[1], drawn)


def test_a_conditional_run_trains_and_resumes_bit_for_bit(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(40, 1, 32, 32, generator=gen) * 2 - 1, torch.arange(40) % 10
    cfg = TrainConfig(T=50, batch_size=8, lr=1e-3, warmup_steps=2, steps=4, checkpoint_every=2, log_every=2,
                      device="cpu", amp="off", label_dropout=0.2, model=NET)
    whole = train(cfg, tmp_path / "whole", progress=False, images=images, labels=labels)
    train(TrainConfig(**{**cfg.__dict__, "steps": 2}), tmp_path / "halves", progress=False, images=images, labels=labels)
    halves = train(cfg, tmp_path / "halves", progress=False, images=images, labels=labels)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, halves.model.state_dict()[name]), name
    assert not torch.equal(whole.model.label_embedding.weight, UNet(NET).label_embedding.weight)  # it learned


def test_a_conditional_network_needs_labels(tmp_path):
    cfg = TrainConfig(steps=1, device="cpu", model=NET, data="folder:/nowhere")
    with pytest.raises(ValueError, match="class-conditional network"):
        train(cfg, tmp_path, progress=False, images=torch.zeros(4, 1, 32, 32))
    with pytest.raises(ValueError, match=r"labels must be integers in 0..9"):
        train(TrainConfig(steps=1, device="cpu", model=NET), tmp_path, progress=False,
              images=torch.zeros(4, 1, 32, 32), labels=torch.tensor([0, 1, 2, 10]))


def run_sample(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddpm_core.sample", *args], capture_output=True, text=True, timeout=300)


def test_sample_command_line_asks_for_a_digit_and_saves_an_array(tmp_path):
    weights = tmp_path / "cond.safetensors"
    save_model(conditional_net(), NET, weights, {"train_config": TrainConfig(T=50, model=NET).to_dict()})
    done = run_sample("--weights", str(weights), "--label", "7", "--cfg", "2", "--n", "3", "--num-steps", "4",
                      "--out", str(tmp_path / "g.png"), "--npz", str(tmp_path / "g.npz"))
    assert done.returncode == 0, done.stderr
    images = np.load(tmp_path / "g.npz")["images"]
    assert images.shape == (3, 1, 32, 32) and (tmp_path / "g.png").is_file()
    for flags, message in ((["--label", "10"], "--label must be an integer in 0..9"),
                           (["--cfg", "2"], "--cfg needs --label"),
                           (["--label", "1", "--guidance", "2"], "cannot be combined"),
                           (["--label", "1", "--npz", "x.txt"], "--npz must name a .npz file")):
        done = run_sample("--weights", str(weights), "--n", "1", "--num-steps", "2", "--out", str(tmp_path / "x.png"),
                          *flags)
        assert done.returncode == 2 and message in done.stderr, (flags, done.stderr)
    done = run_sample("--label", "1", "--out", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "--label needs --weights" in done.stderr


def test_the_shipped_conditional_network_gives_the_digit_asked_for():
    """ddpm_core/assets' class-conditional network, guided with w = 3: the classifier reads most digits as
    the class asked for, and far fewer when the label is ignored (w = 0), from the same noise."""
    from ddpm_core.ddim import ddim_sample_loop
    from ddpm_core.evaluation import classifier_outputs, load_classifier
    from ddpm_core.weights import PRETRAINED_CONDITIONAL, load_model, schedule_of

    model, card = load_model(PRETRAINED_CONDITIONAL)
    assert model.config.num_classes == 10 and card["train_config"]["label_dropout"] > 0
    schedule, classifier = schedule_of(card["train_config"]), load_classifier()
    share = {}
    for weight in (0.0, 3.0):
        hits = 0
        for label in (1, 7):
            with torch.no_grad():
                digits = ddim_sample_loop(schedule, ClassifierFreeGuided(model, label, weight), (8, 1, 32, 32), 20,
                                          eta=1.0, generator=torch.Generator().manual_seed(label))
            hits += int((classifier_outputs(digits, classifier)[1].argmax(dim=1) == label).sum())
        share[weight] = hits / 16
    assert share[3.0] >= 0.75 and share[3.0] >= share[0.0] + 0.4, share
