"""What a benchmark ran on, and the JSON record that keeps it next to the numbers."""

import json
import os
import platform
import sys
from datetime import datetime, timezone
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


def write_record(out: str | Path, script: str, benchmark: str, argv: list[str] | None, info: dict, **fields) -> dict:
    """Write ``{benchmark, date, command, machine, **fields}`` as JSON to ``out`` and return it.

    ``script`` is the benchmark's file name and ``argv`` its arguments (None: the command
    line it was started with); together they are the command that reproduces the record.
    """
    record = {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": info,
        **fields,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")
    return record
