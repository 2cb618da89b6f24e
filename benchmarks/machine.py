"""What a benchmark ran on, recorded next to its numbers."""

import os
import platform
from pathlib import Path

import torch

def machine() -> dict:
    """What the numbers were measured on: CPU model, cores, torch threads, load average."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1_5_15_min_at_start": [round(v, 2) for v in os.getloadavg()],
    }
