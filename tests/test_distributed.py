"""Training on several processes (torchrun, gloo on the CPU) and from images read by worker processes.

Two processes that each train on half of every batch must compute what one process computes
on the whole batch (up to the order of floating-point sums), resume bit for bit, and resume
a run that another number of processes started. A DataLoader that reads ahead in worker
processes must still resume exactly where the run stopped.
"""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from torch.utils.data import Dataset

from ddpm_core.train import TrainConfig, train
from ddpm_core.train.batches import BatchStream, rank_slice
from ddpm_core.unet import UNetConfig
from ddpm_core.weights import list_checkpoints, load_checkpoint

TINY_FLAGS = ["--T", "50", "--batch-size", "8", "--lr", "1e-3", "--warmup-steps", "2", "--log-every", "1",
              "--checkpoint-every", "2", "--device", "cpu", "--amp", "off", "--patch-size", "2",
              "--base-channels", "8", "--channel-mults", "1,2", "--num-res-blocks", "1",
              "--attention-resolutions", "", "--num-groups", "4", "--dropout", "0", "--threads", "1", "--no-progress"]


def run_training(run_dir, steps: int, processes: int, *extra: str) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    done = subprocess.run([*launcher, "-m", "ddpm_core.train", "--run-dir", str(run_dir), "--steps", str(steps),
                           *TINY_FLAGS, *extra], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def final_weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(list_checkpoints(run_dir)[-1])["model"]


def assert_close_weights(a: dict, b: dict, exact: bool) -> None:
    for name in a:
        if exact:
            assert torch.equal(a[name], b[name]), name
        else:
            torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process for 4 steps; two processes for 4; two for 2 then resumed to 4; two for 2, resumed by one."""
    root = tmp_path_factory.mktemp("distributed")
    run_training(root / "one", 4, 1)
    run_training(root / "two", 4, 2)
    run_training(root / "two_resumed", 2, 2)
    run_training(root / "two_resumed", 4, 2)
    run_training(root / "two_then_one", 2, 2)
    run_training(root / "two_then_one", 4, 1)
    return root


def test_two_processes_compute_what_one_does(runs):
    # Same global batch, t and eps; the gradient is averaged over the two halves instead of
    # summed over one batch, so the weights agree to float32 rounding, not bit for bit.
    assert_close_weights(final_weights(runs / "one"), final_weights(runs / "two"), exact=False)


def test_two_processes_resume_bit_for_bit(runs):
    assert_close_weights(final_weights(runs / "two"), final_weights(runs / "two_resumed"), exact=True)


def test_a_run_resumes_on_another_number_of_processes(runs):
    assert_close_weights(final_weights(runs / "two"), final_weights(runs / "two_then_one"), exact=False)


def test_process_zero_alone_writes_the_metrics(runs):
    lines = (runs / "two" / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in lines] == [1, 2, 3, 4]


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--batch-size") + 1] = "7"
    done = subprocess.run([*launcher, "-m", "ddpm_core.train", "--run-dir", str(tmp_path), "--steps", "1", *flags],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "batch_size must be a multiple of the number of processes (2), got 7" in done.stderr


def test_rank_slices_cover_the_batch():
    assert [rank_slice(8, r, 2) for r in range(2)] == [slice(0, 4), slice(4, 8)]
    assert rank_slice(8, 0, 1) == slice(0, 8)


class UInt8Digits(Dataset):
    """Digits as a dataset of uint8 images, as ddpm_core.datasets gives them."""

    def __init__(self, pixels: torch.Tensor):
        self.pixels = pixels

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pixels[i]


PIXELS = torch.randint(0, 256, (20, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("random_flip", [False, True])
def test_a_loader_draws_the_same_batches_as_memory(random_flip):
    in_memory = BatchStream(PIXELS.float() / 127.5 - 1, 6, random_flip, torch.Generator().manual_seed(3))
    from_disk = BatchStream(UInt8Digits(PIXELS), 6, random_flip, torch.Generator().manual_seed(3), num_workers=0)
    for _ in range(3):
        assert torch.equal(in_memory.next(), from_disk.next())


def test_a_loader_reading_ahead_saves_where_training_stands():
    stream = BatchStream(UInt8Digits(PIXELS), 4, True, torch.Generator().manual_seed(1), num_workers=2)
    first = stream.next()
    state = stream.generator_state()  # the workers have drawn further; this is before the second batch
    second = stream.next()
    again = BatchStream(UInt8Digits(PIXELS), 4, True, torch.Generator().set_state(state), num_workers=0)
    assert torch.equal(again.next(), second) and not torch.equal(first, second)


def test_training_from_worker_processes_resumes_bit_for_bit(tmp_path):
    cfg = TrainConfig(T=50, batch_size=4, lr=1e-3, warmup_steps=2, steps=4, checkpoint_every=2, log_every=2,
                      random_flip=True, num_workers=2, device="cpu", amp="off",
                      model=UNetConfig(patch_size=2, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                       attention_resolutions=(), num_groups=4))
    data = UInt8Digits(PIXELS)
    whole = train(cfg, tmp_path / "whole", progress=False, images=data)
    train(replace(cfg, steps=2), tmp_path / "halves", progress=False, images=data)
    halves = train(cfg, tmp_path / "halves", progress=False, images=data)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, halves.model.state_dict()[name]), name


def write_image_folder(folder, n: int = 12) -> None:
    """``n`` small RGB images of coloured squares, in two sub-folders, as PNG and JPEG."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        colour = tuple(int(c) for c in torch.randint(0, 256, (3,), generator=gen))
        image = Image.new("RGB", (24, 20), (0, 0, 0))
        image.paste(Image.new("RGB", (10, 10), colour), (4 + i % 6, 4 + i % 5))
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        image.save(sub / f"{i}.{'png' if i % 3 else 'jpg'}")


@pytest.mark.parametrize("processes", [1, 2])
def test_training_on_a_folder_of_images(tmp_path, processes):
    write_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    run_training(run_dir, 2, processes, "--data", f"folder:{tmp_path / 'images'}", "--channels", "3",
                 "--image-size", "16", "--random-flip", "--num-workers", "1", "--sample-every", "2")
    ckpt = load_checkpoint(list_checkpoints(run_dir)[-1])
    assert ckpt["step"] == 2 and ckpt["model"]["conv_in.weight"].shape[1] == 3 * 2 * 2  # 3 channels, 2 x 2 patches
    assert (run_dir / "samples" / "step_0000002.png").is_file()  # an RGB preview grid


def test_a_folder_without_images_is_refused_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "ddpm_core.train", "--run-dir", str(tmp_path / "run"), "--steps", "1",
                           "--data", f"folder:{tmp_path / 'empty'}", *TINY_FLAGS], capture_output=True, text=True)
    assert done.returncode == 2 and "data='folder:" in done.stderr
    assert not (tmp_path / "run").exists()
