"""The networks the browser runs (ddpm_core.export_onnx) compute what PyTorch computes.

The shipped files in book/sampler/ are decoded as the page decodes them and run with
onnxruntime (Python); their eps must equal the PyTorch model's to 1e-4 on random inputs and
timesteps, at several batch sizes. The exporter itself is checked on a network of another shape,
and the manifest against the model's NoiseSchedule.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from ddpm_core import export_onnx as ex
from ddpm_core.unet import UNet, UNetConfig
from ddpm_core.weights import PRETRAINED, PRETRAINED_GUIDE, load_pretrained

ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported networks (requirements.txt)")
pytest.importorskip("onnx", reason="torch.onnx.export writes ONNX with the onnx package (requirements.txt)")

SAMPLER = Path(__file__).resolve().parents[1] / "book" / "sampler"
TOLERANCE = 1e-4


def _session(onnx_bytes: bytes):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a small shared machine; the networks are small
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _largest_gap(session, model: torch.nn.Module, batch: int, T: int, seed: int) -> float:
    """max |eps_onnx - eps_torch| on x ~ N(0, I) (B, C, H, W) and t uniform in 1..T, with t = 1 and T among them."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.image_channels, cfg.image_size, cfg.image_size, generator=g)
    t = torch.randint(1, T + 1, (batch,), generator=g)
    t[0] = 1
    t[-1] = T
    (eps_onnx,) = session.run(None, {"x": x.numpy(), "t": t.numpy()})
    with torch.no_grad():
        eps_torch = model(x, t)
    assert eps_onnx.shape == tuple(eps_torch.shape)
    return float((torch.from_numpy(eps_onnx) - eps_torch).abs().max())


@pytest.mark.parametrize("name, weights", [("model.onnx", PRETRAINED), ("guide.onnx", PRETRAINED_GUIDE)])
def test_shipped_network_matches_pytorch(name, weights):
    """book/sampler/{model,guide}.onnx.js hold the shipped weights: eps equal to PyTorch's to 1e-4."""
    stored_name, onnx_bytes = ex.read_payload(SAMPLER / f"{name}.js")
    assert stored_name == name
    model, schedule = load_pretrained(weights)
    session = _session(onnx_bytes)
    assert [i.name for i in session.get_inputs()] == ["x", "t"]
    assert [i.type for i in session.get_inputs()] == ["tensor(float)", "tensor(int64)"]
    for seed, batch in enumerate((1, 3, 16)):  # the batch size is free
        gap = _largest_gap(session, model, batch, schedule.T, seed)
        assert gap < TOLERANCE, f"{name}, batch {batch}: ONNX and PyTorch differ by {gap:.2e}"


def test_export_unet_on_another_network():
    """export_unet on a network with attention, one level fewer and random weights: the same eps."""
    torch.manual_seed(0)
    config = UNetConfig(image_size=16, patch_size=1, base_channels=8, channel_mults=(1, 2),
                        attention_resolutions=(8,), dropout=0.0, num_groups=4)
    model = UNet(config)
    with torch.no_grad():
        for p in model.parameters():  # the zero-initialised output layer would make eps = 0
            p.add_(0.1 * torch.randn_like(p))
    session = _session(ex.export_unet(model))
    for seed, batch in enumerate((1, 5)):
        gap = _largest_gap(session, model.eval(), batch, 1000, seed)
        assert gap < TOLERANCE, f"batch {batch}: ONNX and PyTorch differ by {gap:.2e}"


def test_export_unet_rejects_other_models():
    with pytest.raises(ValueError, match="model must be a ddpm_core.unet.UNet"):
        ex.export_unet(torch.nn.Linear(2, 2))


def test_manifest_is_the_schedule_and_the_files():
    """manifest.js: alphabar_t of the model's NoiseSchedule bit for bit, and each file's size."""
    manifest = ex.read_manifest(SAMPLER / "manifest.js")
    _, schedule = load_pretrained()
    assert manifest["T"] == schedule.T
    assert torch.equal(torch.tensor(manifest["alphas_cumprod"], dtype=torch.float64), schedule.alphas_cumprod)
    assert manifest["alphas_cumprod"][0] == 1.0  # alphabar_0 = 1 stands for x_0
    card = json.loads(PRETRAINED.with_suffix(".json").read_text())
    assert (manifest["image_channels"], manifest["image_size"]) == (1, card["unet_config"]["image_size"])
    for name, size in manifest["files"].items():
        assert (SAMPLER / name).stat().st_size == size, f"{name}: the manifest records another size"
    runtime = manifest["runtime"]
    assert runtime["package"] == "onnxruntime-web"
    assert set(manifest["files"]) == {"model.onnx.js", "guide.onnx.js", f"{runtime['bundle']}.js", f"{runtime['wasm']}.js"}


def test_runtime_files_are_what_the_manifest_says():
    """The vendored runtime decodes to a WebAssembly binary and onnxruntime-web's bundle of that version."""
    runtime = ex.read_manifest(SAMPLER / "manifest.js")["runtime"]
    name, wasm = ex.read_payload(SAMPLER / f"{runtime['wasm']}.js")
    assert name == runtime["wasm"] == "ort-wasm-simd.wasm"
    assert wasm[:4] == b"\0asm" and len(wasm) == runtime["wasm_bytes"]
    name, bundle = ex.read_payload(SAMPLER / f"{runtime['bundle']}.js")
    assert name == runtime["bundle"] and len(bundle) == runtime["bundle_bytes"]
    assert f"ONNX Runtime Web v{runtime['version']}".encode() in bundle[:200]


def test_payload_round_trip_and_tampering(tmp_path):
    data = bytes(range(256)) * 10
    path = tmp_path / "x.bin.js"
    path.write_text(ex.payload("x.bin", data), encoding="ascii")
    assert ex.read_payload(path) == ("x.bin", data)
    assert ex.payload("x.bin", data) == path.read_text(encoding="ascii")  # the same bytes every time
    entry = json.loads(path.read_text(encoding="ascii").splitlines()[-1].split(" = ", 1)[1].rstrip(";"))
    entry["size"] += 1
    path.write_text(ex.payload("x.bin", data).rsplit("\n", 2)[0] + f"\nglobalThis.{ex.GLOBAL}[\"x.bin\"] = {json.dumps(entry)};\n")
    with pytest.raises(ValueError, match="do not match the size and sha256"):
        ex.read_payload(path)
    (tmp_path / "other.js").write_text("var x = 1;\n")
    with pytest.raises(ValueError, match="path must be a payload file"):
        ex.read_payload(tmp_path / "other.js")


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    """An npm pack tarball holding ``members`` under package/."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_vendor_runtime_copies_the_bundle_and_the_binary(tmp_path):
    package = json.dumps({"name": "onnxruntime-web", "version": "9.9.9"}).encode()
    tarball = _tarball(tmp_path / "ort.tgz", {"package.json": package, "dist/ort.wasm.min.js": b"var ort = {};",
                                              "dist/ort-wasm-simd.wasm": b"\0asm\1\0\0\0"})
    info = ex.vendor_runtime(tarball, tmp_path)
    assert (info["version"], info["bundle"], info["wasm"], info["wasm_bytes"]) == ("9.9.9", "ort.wasm.min.js", "ort-wasm-simd.wasm", 8)
    assert ex.read_payload(tmp_path / "ort.wasm.min.js.js") == ("ort.wasm.min.js", b"var ort = {};")
    assert ex.read_payload(tmp_path / "ort-wasm-simd.wasm.js") == ("ort-wasm-simd.wasm", b"\0asm\1\0\0\0")


def test_vendor_runtime_rejects_what_is_not_the_package(tmp_path):
    with pytest.raises(ValueError, match="runtime must be an npm pack tarball of onnxruntime-web"):
        ex.vendor_runtime(tmp_path / "missing.tgz", tmp_path)
    other = _tarball(tmp_path / "other.tgz", {"package.json": b'{"name": "left-pad", "version": "1.0.0"}'})
    with pytest.raises(ValueError, match="got one of 'left-pad'"):
        ex.vendor_runtime(other, tmp_path)
    # From 1.19 on, onnxruntime-web ships no one-thread binary.
    newer = _tarball(tmp_path / "newer.tgz", {"package.json": b'{"name": "onnxruntime-web", "version": "1.31.1"}',
                                              "dist/ort.wasm.min.js": b"var ort = {};"})
    with pytest.raises(ValueError, match="has no dist/ort-wasm-simd.wasm"):
        ex.vendor_runtime(newer, tmp_path)
