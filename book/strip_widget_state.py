"""Remove from the chapters what a live widget leaves behind when they are executed.

The live explorers (``ddpm_core.explorers``) run in a kernel; in the static book their cells are
removed and a precomputed scrubber stands in for them. Executing a chapter stores each widget's
view in the cell's outputs and the widgets' state in the notebook's metadata, and a book page
built from either loads the ipywidgets scripts from a CDN. So after ``make notebooks`` executes
the chapters, this clears the outputs of every cell that produced a widget and drops the saved
widget state: the book loads nothing from outside, and Jupyter or Colab draw the widgets afresh
when the learner runs the cell.

    python book/strip_widget_state.py          # rewrite the chapters in place
    python book/strip_widget_state.py --check  # exit 1 if a chapter holds widget state
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHAPTERS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def holds_widgets(nb: dict) -> bool:
    """Whether the notebook stores widget state or a widget's view in an output."""
    views = any(WIDGET_VIEW in out.get("data", {}) for cell in nb["cells"] for out in cell.get("outputs", []))
    return views or "widgets" in nb["metadata"]


def strip(nb: dict) -> dict:
    """The notebook without widget state, and without the outputs of the cells that made widgets."""
    for cell in nb["cells"]:
        if any(WIDGET_VIEW in out.get("data", {}) for out in cell.get("outputs", [])):
            cell["outputs"] = []  # the execution count stays: the cell ran, its widget is not kept
    nb["metadata"].pop("widgets", None)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if a chapter holds widget state")
    args = parser.parse_args(argv)
    found = []
    for path in CHAPTERS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if holds_widgets(nb):
            found.append(path.name)
            if not args.check:
                path.write_text(json.dumps(strip(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    verb = "hold" if args.check else "stripped"
    print(f"{len(found)} chapter(s) {verb} widget state{': ' + ', '.join(found) if found else ''}")
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
