"""What a benchmark ran on, the JSON record that keeps it next to the numbers, and where it goes."""

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


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


def changed_options(parser: argparse.ArgumentParser, args: argparse.Namespace, ignore: tuple[str, ...] = ()) -> list[str]:
    """The options of ``args`` whose value is not ``parser``'s default, as flags (``--sample-seeds``)."""
    return [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
            if name not in ("out", *ignore) and value != parser.get_default(name)]


def out_path(parser: argparse.ArgumentParser, args: argparse.Namespace, current: str,
             changed: list[str] | None = None) -> Path:
    """Where a run writes its record: ``--out`` if given, else ``results/<current>``.

    ``results/<current>`` is the recorded result of the script's default configuration, so only
    that configuration may rewrite it: a run that changes any option (``changed``, by default
    :func:`changed_options`) must name its own ``--out``.
    """
    if args.out is not None:
        return Path(args.out)
    changed = changed_options(parser, args) if changed is None else changed
    if changed:
        parser.error(f"{', '.join(changed)} given: only the default configuration rewrites its recorded result, "
                     f"benchmarks/results/{current}; name this run's file with --out")
    return RESULTS / current


def write_record(out: str | Path, script: str, benchmark: str, argv: list[str] | None, info: dict, **fields) -> dict:
    """Write ``{benchmark, date, command, machine, **fields}`` as JSON to ``out`` and return it.

    ``script`` is the benchmark's file name and ``argv`` its arguments (None: the command
    line it was started with); together they are the command that reproduces the record.
    """
    record = {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)]),
        "machine": info,
        **fields,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")
    return record
