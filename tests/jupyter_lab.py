"""What the checks in JupyterLab share (check_scrubber_in_jupyter.py, check_explorers_in_jupyter.py).

Not a test module (pytest collects test_*.py only): a throwaway Jupyter server, the headless
Chromium that opens it, and the list of checks a script prints and counts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Checks:
    """Each check printed as it is made ("ok" or "FAIL"), the failures kept for the summary."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.count = 0

    def expect(self, ok: bool, what: str, detail: object = None) -> bool:
        self.count += 1
        shown = what if ok or detail is None else f"{what}  [{detail}]"
        print(("  ok    " if ok else "  FAIL  ") + shown, flush=True)
        if not ok:
            self.failures.append(shown)
        return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_jupyter(tmp: Path, root_dir: Path, **env: str) -> Iterator[str]:
    """A Jupyter server (JupyterLab and, where installed, Notebook 7) serving ``root_dir``; yields its URL.

    Its data, runtime, config, settings and workspace folders are under ``tmp``, so the user's
    settings and trust database are left alone. JupyterLab renders every cell (no windowing,
    so a locator finds cells off-screen) and asks for no news. ``env`` adds environment variables.
    """
    jupyter, env_dir = Path(sys.executable).with_name("jupyter"), tmp / "jupyter"
    settings = env_dir / "settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    server_env = dict(os.environ, JUPYTER_DATA_DIR=str(env_dir / "data"), JUPYTER_RUNTIME_DIR=str(env_dir / "runtime"),
                      JUPYTER_CONFIG_DIR=str(env_dir / "config"), JUPYTERLAB_SETTINGS_DIR=str(env_dir / "settings"),
                      JUPYTERLAB_WORKSPACES_DIR=str(env_dir / "workspaces"), **env)
    port, log = free_port(), tmp / "server.log"
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.token=", "--ServerApp.password=",
         "--allow-root", f"--ServerApp.root_dir={root_dir}"],
        env=server_env, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the Jupyter server did not start:\n" + log.read_text())
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def report(failures: list[str], out: Path) -> int:
    """Print where the screenshots are and what failed; the script's exit status (1 if a check failed)."""
    print(f"screenshots in {out}")
    if failures:
        print(f"{len(failures)} checks failed:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0
