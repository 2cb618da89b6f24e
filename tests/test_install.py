"""Installing ddpm_core on Colab changes no package that Colab already has.

Every chapter's first cell runs ``pip install "ddpm_core[mnist] @ git+..."`` on Colab, whose
torch, numpy, matplotlib, numba, scikit-learn ... are preinstalled. A dependency of ddpm_core
that needs a newer release of any of them makes pip upgrade it (and can break the others that
pin it) while still exiting 0; mlxtend 0.25, for one, asks for numpy>=2.3.5, which breaks
numba 0.60 (numpy<2.1). This test asks pip what that install would do:

* a throwaway environment (this machine's Python, not Colab's 3.12) holds the packages of
  ``tests/colab_like_packages.txt`` as bare ``.dist-info`` directories: name, version and the
  real Requires-Dist of each release, no code. pip decides from that metadata alone;
* ddpm_core is built into a wheel from a copy of this repository;
* ``pip install --dry-run --report --no-index "<wheel>[mnist]"`` into that environment must
  plan to install ddpm_core and nothing else. With ``--no-index`` nothing can be downloaded,
  so any requirement the preinstalled set does not satisfy fails the resolution outright.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = Path(__file__).resolve().parent / "colab_like_packages.txt"


def read_packages(path: Path = PACKAGES) -> list[tuple[str, str, list[str]]]:
    """(name, version, requires_dist) for each package of the file (see its header for the format)."""
    packages: list[tuple[str, str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            packages[-1][2].append(line.strip())
        else:
            name, version = line.strip().split("==")
            packages.append((name, version, []))
    return packages


def write_dist_info(site_packages: Path, name: str, version: str, requires: list[str]) -> None:
    """A bare installed distribution: METADATA, INSTALLER and RECORD, as pip would leave them."""
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    info = site_packages / f"{stem}.dist-info"
    info.mkdir()
    metadata = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(metadata) + "\n", encoding="utf-8")
    (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    (info / "RECORD").write_text("".join(f"{info.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD")),
                                 encoding="utf-8")


def pip_env() -> dict[str, str]:
    """This process's environment without any pip settings: no config file, index, find-links or constraint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def run_pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=pip_env(),
                          timeout=300)


@pytest.fixture(scope="module")
def colab_like_python(tmp_path_factory) -> Path:
    """The Python of a fresh environment (no pip, no setuptools) holding the Colab-like set as metadata."""
    root = tmp_path_factory.mktemp("colab_like")
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    assert site_packages.is_dir(), site_packages
    for name, version, requires in read_packages():
        write_dist_info(site_packages, name, version, requires)
    return python


@pytest.fixture(scope="module")
def ddpm_core_wheel(tmp_path_factory) -> Path:
    """ddpm_core built from a copy of the repository (so no build/ folder appears in the work tree)."""
    setuptools = pytest.importorskip("setuptools")
    major = int(setuptools.__version__.split(".")[0])
    assert major >= 77, f"building ddpm_core needs setuptools>=77 (pyproject.toml), this one is {setuptools.__version__}"
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "ddpm_core", src / "ddpm_core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    done = run_pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--wheel-dir", str(out), str(src))
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("ddpm_core-*.whl")
    return wheel


def test_the_colab_like_set_is_read_as_written(colab_like_python):
    packages = {name.lower(): (version, requires) for name, version, requires in read_packages()}
    assert packages["numpy"][0] == "2.0.2" and packages["numba"][0] == "0.60.0"
    assert "numpy <2.1,>=1.22" in packages["numba"][1]  # the pin that an upgrade of numpy breaks
    done = run_pip("--python", str(colab_like_python), "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    listed = {p["name"].lower(): p["version"] for p in json.loads(done.stdout)}
    assert listed == {name: version for name, (version, _) in packages.items()}


def test_installing_ddpm_core_on_colab_changes_no_installed_package(colab_like_python, ddpm_core_wheel, tmp_path):
    report = tmp_path / "report.json"
    done = run_pip("--python", str(colab_like_python), "install", "--dry-run", "--no-index", "--quiet",
                   "--report", str(report), f"{ddpm_core_wheel}[mnist]")
    assert done.returncode == 0, (
        "pip cannot install ddpm_core[mnist] into the Colab-like set without fetching something, so on Colab it would "
        "install or upgrade packages:\n" + done.stdout + done.stderr
    )
    planned = [(item["metadata"]["name"], item["metadata"]["version"]) for item in json.loads(report.read_text())["install"]]
    assert [name for name, _ in planned] == ["ddpm_core"], f"pip would install {planned}"
