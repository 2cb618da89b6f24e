"""The shipped model in the reader's browser: ONNX files, the schedule and the runtime for ``book/sampler/``.

The page ``book/sampler.md`` samples with the shipped network eps_theta and its guide
(:data:`ddpm_core.weights.PRETRAINED_GUIDE`) in the reader's browser, with onnxruntime-web.
This module writes everything that page loads, as classic scripts (``.js`` files that assign
to one global), because a browser refuses ``fetch`` and module imports for a page opened from
``file://`` but runs a ``<script src>`` from there:

* ``model.onnx.js`` and ``guide.onnx.js``: the two networks exported to ONNX by
  :func:`export_unet` (inputs ``x`` (B, 1, 32, 32) float32 and ``t`` (B,) int64, the paper's
  t = 1..T; output ``eps`` like ``x``; B free), gzip-compressed and base64-encoded;
* ``manifest.js``: what the page needs before loading them, from :func:`manifest`: T and
  alphabar_t for t = 0..T from the model's :class:`~ddpm_core.schedules.NoiseSchedule`
  (entry 0 is alphabar_0 = 1, for x_0), the image shape, and each file's size;
* with ``--runtime``, the runtime from an ``npm pack`` tarball of ``onnxruntime-web``: its
  classic-script bundle for the WebAssembly backend, ``ort.wasm.min.js``, and its WebAssembly
  binary for one thread with SIMD, ``ort-wasm-simd.wasm``, each unchanged inside a payload file
  (``ort.wasm.min.js.js``, ``ort-wasm-simd.wasm.js``). The bundle travels as data, not as a
  script of the page, because the page runs it in workers, which cannot load a file from disk.

Every payload file ``NAME.js`` is ``ddpmSamplerFiles[NAME] = {encoding, size, sha256, data}``;
:func:`read_payload` reads one back (the tests decode the shipped files with it). Written
twice from the same weights, the files are byte for byte the same.

    python -m ddpm_core.export_onnx --out book/sampler/
    python -m ddpm_core.export_onnx --out book/sampler/ --runtime onnxruntime-web-1.18.0.tgz
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import warnings
from pathlib import Path

import torch

from .schedules import NoiseSchedule
from .unet import UNet
from .weights import PRETRAINED, PRETRAINED_GUIDE, load_pretrained, read_card

GLOBAL = "ddpmSamplerFiles"  # the one global every payload file assigns to
MODEL_FILES = {"model": "model.onnx", "guide": "guide.onnx"}  # what the page calls each network
RUNTIME_BUNDLE = "ort.wasm.min.js"  # onnxruntime-web's classic script, WebAssembly backend only
RUNTIME_WASM = "ort-wasm-simd.wasm"  # one thread, SIMD; onnxruntime-web 1.18 is the last release to ship it
DEFAULT_OPSET = 20  # what torch.onnx's exporter writes by default; onnxruntime-web 1.18 runs it


# ----------------------------------------------------------------------------- the network


def export_unet(model: UNet, opset: int = DEFAULT_OPSET) -> bytes:
    """The network eps_theta(x_t, t) as an ONNX model, serialised.

    Exported with ``torch.onnx.export`` (the ``torch.export``-based exporter). The batch size
    is free; everything else is fixed by the model's :class:`~ddpm_core.unet.UNetConfig`.
    Metadata that only helps debugging (each node's source line, with the path of this
    checkout) is removed, so the bytes depend on the weights and the exporter only.

    Args:
        model: a :class:`~ddpm_core.unet.UNet` (put in eval mode here).
        opset: the ONNX operator set to write.

    Returns:
        the ONNX ``ModelProto``, serialised: inputs ``x`` (B, C, H, W) float32 and ``t``
        (B,) int64 in 1..T, output ``eps`` of ``x``'s shape.
    """
    if not isinstance(model, UNet):
        raise ValueError(f"model must be a ddpm_core.unet.UNet, got {type(model).__name__}")
    cfg = model.config
    model = model.eval()
    x = torch.zeros(2, cfg.image_channels, cfg.image_size, cfg.image_size)  # (B, C, H, W), B = 2 to trace
    t = torch.tensor([1, 2], dtype=torch.long)  # (B,)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        # x and t share the one batch dimension, so the exporter keeps one name for it and says so.
        warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape constraints")
        program = torch.onnx.export(
            model, (x, t), None, input_names=["x", "t"], output_names=["eps"], opset_version=opset,
            dynamo=True, dynamic_shapes={"x": {0: batch}, "t": {0: batch}}, external_data=False, verbose=False,
        )
    proto = program.model_proto
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.metadata_props[:]
    del proto.graph.value_info[:]  # intermediate shapes: the runtime infers them again
    return proto.SerializeToString()


# ----------------------------------------------------------------------------- payload files


def payload(name: str, data: bytes) -> str:
    """A classic script that stores ``data`` (gzip, then base64) under ``ddpmSamplerFiles[name]``."""
    packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same bytes every time
    entry = {
        "encoding": "gzip+base64",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data": base64.b64encode(packed).decode("ascii"),
    }
    return (f"// {name}, written by `python -m ddpm_core.export_onnx`: gzip, then base64.\n"
            f"globalThis.{GLOBAL} = globalThis.{GLOBAL} || {{}};\n"
            f"globalThis.{GLOBAL}[{json.dumps(name)}] = {json.dumps(entry)};\n")


def read_payload(path: str | Path) -> tuple[str, bytes]:
    """(name, bytes) stored in a file that :func:`payload` wrote; checks the size and sha256."""
    text = Path(path).read_text(encoding="ascii")
    found = re.search(rf"^globalThis\.{GLOBAL}\[(\"[^\"]+\")\] = (\{{.*\}});$", text, re.M)
    if found is None:
        raise ValueError(f"path must be a payload file written by ddpm_core.export_onnx, got {str(path)!r}")
    name, entry = json.loads(found.group(1)), json.loads(found.group(2))
    data = gzip.decompress(base64.b64decode(entry["data"]))
    if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{str(path)!r}: the decoded bytes do not match the size and sha256 it records")
    return name, data


def manifest(schedule: NoiseSchedule, card: dict, files: dict[str, int], runtime: dict | None) -> dict:
    """What the page reads before it loads anything else (``manifest.js``).

    Args:
        schedule: the model's noise schedule; the page reads alphabar_t from here, for t = 0..T
            (``alphas_cumprod``, entry 0 = 1 for x_0), and computes nothing else of it by itself.
        card: the model's card (:func:`ddpm_core.weights.read_card`), for the image shape.
        files: size in bytes of each file the page loads when the reader first presses a button.
        runtime: ``{"package", "version", "wasm"}`` of the vendored onnxruntime-web, or None.
    """
    unet = card["unet_config"]
    return {
        "T": schedule.T,
        "alphas_cumprod": [float(a) for a in schedule.alphas_cumprod],  # float64; JSON keeps every bit
        "image_channels": unet["image_channels"],
        "image_size": unet["image_size"],
        "model_steps": card.get("steps"),
        "files": files,
        "runtime": runtime,
    }


# ----------------------------------------------------------------------------- the runtime


def vendor_runtime(tarball: str | Path, out: Path) -> dict:
    """Copy onnxruntime-web's classic bundle and its one-thread SIMD binary out of an ``npm pack`` tarball.

    Args:
        tarball: ``onnxruntime-web-<version>.tgz`` from ``npm pack onnxruntime-web@<version>``.
        out: the folder to write the payload files ``ort.wasm.min.js.js`` and ``ort-wasm-simd.wasm.js`` to.

    Returns:
        ``{"package", "version", "tarball_sha256", "bundle", "bundle_bytes", "wasm", "wasm_bytes"}``.
    """
    tarball = Path(tarball)
    if not tarball.is_file():
        raise ValueError(f"runtime must be an npm pack tarball of onnxruntime-web, got {str(tarball)!r}")
    raw = tarball.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        def member(name: str) -> bytes:
            try:
                return tar.extractfile(f"package/{name}").read()
            except KeyError:
                raise ValueError(f"runtime: {tarball.name} has no {name} (onnxruntime-web 1.18 is the last "
                                 f"release with a one-thread build {RUNTIME_WASM})") from None

        package = json.loads(member("package.json"))
        if package.get("name") != "onnxruntime-web":
            raise ValueError(f"runtime must be a tarball of onnxruntime-web, got one of {package.get('name')!r}")
        bundle, wasm = member(f"dist/{RUNTIME_BUNDLE}"), member(f"dist/{RUNTIME_WASM}")
    for name, data in ((RUNTIME_BUNDLE, bundle), (RUNTIME_WASM, wasm)):
        (out / f"{name}.js").write_text(payload(name, data), encoding="ascii")
    return {"package": "onnxruntime-web", "version": package["version"],
            "tarball_sha256": hashlib.sha256(raw).hexdigest(), "bundle": RUNTIME_BUNDLE, "bundle_bytes": len(bundle),
            "wasm": RUNTIME_WASM, "wasm_bytes": len(wasm)}


# ----------------------------------------------------------------------------- everything


def write_sampler_files(out: str | Path, weights: str | Path | None = None, guide: str | Path | None = None,
                        runtime: str | Path | None = None) -> dict:
    """Write the files ``book/sampler.md`` loads into ``out``; return the manifest.

    Args:
        out: the folder (created if missing).
        weights: the model's ``.safetensors`` file (default: the shipped model).
        guide: the guide's ``.safetensors`` file (default: the shipped guide).
        runtime: an ``npm pack`` tarball of onnxruntime-web to vendor; None keeps the runtime
            files already in ``out`` (and the runtime entry of the manifest there).

    Returns:
        the manifest, as written to ``out/manifest.js``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = PRETRAINED if weights is None else Path(weights)
    guide = PRETRAINED_GUIDE if guide is None else Path(guide)
    model, schedule = load_pretrained(weights)
    guide_model, guide_schedule = load_pretrained(guide)
    if not torch.equal(schedule.alphas_cumprod, guide_schedule.alphas_cumprod):
        raise ValueError("guide must have been trained with the model's noise schedule")
    for key, network in (("model", model), ("guide", guide_model)):
        name = MODEL_FILES[key]
        (out / f"{name}.js").write_text(payload(name, export_unet(network)), encoding="ascii")
    if runtime is not None:
        runtime_info = vendor_runtime(runtime, out)
    else:
        runtime_info = _previous_manifest(out).get("runtime")
    loaded = [f"{name}.js" for name in MODEL_FILES.values()]
    loaded += [f"{RUNTIME_BUNDLE}.js", f"{RUNTIME_WASM}.js"] if runtime_info else []
    files = {name: (out / name).stat().st_size for name in loaded}
    info = manifest(schedule, read_card(weights), files, runtime_info)
    (out / "manifest.js").write_text(
        "// What book/sampler.md reads first, written by `python -m ddpm_core.export_onnx`.\n"
        f"globalThis.{GLOBAL} = globalThis.{GLOBAL} || {{}};\n"
        f"globalThis.{GLOBAL}.manifest = {json.dumps(info)};\n", encoding="ascii")
    return info


def read_manifest(path: str | Path) -> dict:
    """The manifest stored in ``manifest.js``."""
    found = re.search(rf"^globalThis\.{GLOBAL}\.manifest = (\{{.*\}});$", Path(path).read_text(encoding="ascii"), re.M)
    if found is None:
        raise ValueError(f"path must be a manifest.js written by ddpm_core.export_onnx, got {str(path)!r}")
    return json.loads(found.group(1))


def _previous_manifest(out: Path) -> dict:
    return read_manifest(out / "manifest.js") if (out / "manifest.js").is_file() else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write to (the book's: book/sampler/)")
    parser.add_argument("--weights", help="the model's .safetensors file (default: the shipped model)")
    parser.add_argument("--guide", help="the guide's .safetensors file (default: the shipped guide)")
    parser.add_argument("--runtime", help="npm pack tarball of onnxruntime-web to vendor (default: keep the one in --out)")
    args = parser.parse_args(argv)
    info = write_sampler_files(args.out, args.weights, args.guide, args.runtime)
    for name, size in info["files"].items():
        print(f"{name:<26} {size:>10,} bytes")
    runtime = info["runtime"]
    print(f"T = {info['T']}; runtime: " + (f"{runtime['package']} {runtime['version']}, {runtime['wasm']} "
                                            f"({runtime['wasm_bytes']:,} bytes)" if runtime else "none in --out"))


if __name__ == "__main__":
    main()


__all__ = ["export_unet", "payload", "read_payload", "manifest", "read_manifest", "vendor_runtime",
           "write_sampler_files"]
