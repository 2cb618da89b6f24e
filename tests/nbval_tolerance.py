"""Printed numbers compared as floating point allows, so that `pytest --nbval` passes on any CPU.

nbval compares a chapter's stored outputs with the outputs of a fresh run, character by
character. Two CPUs with different instruction sets (AVX2, AVX-512, AMX, NEON) add floating-point
numbers in different orders, so a float32 result can differ in its last bits; a number that
sits on a rounding boundary then prints one digit apart, and a short training run amplifies
the difference further. This plugin makes the comparison say what it means:

* the text around the numbers must match exactly (runs of spaces may change width);
* a number printed with a decimal point or an exponent may differ by one unit in its last
  printed digit (``27.03`` against ``27.04``, ``1.0525`` against ``1.0526``): a rounding that
  falls the other way, never more;
* integers must match exactly;
* a cell whose numbers come from a training run may widen this in its metadata, and must say
  why: ``{"tolerance": {"rtol": 0.05, "atol": 0.01, "why": "..."}}`` allows every number of
  the cell (integers too) to differ by ``atol + rtol * |stored|`` beyond the rounding unit.

Loaded by the top-level ``conftest.py``; `tests/test_nbval_tolerance.py` tests it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Tolerance:
    """How far a fresh number may be from the stored one, beyond one unit of its last digit."""

    rtol: float = 0.0
    atol: float = 0.0

    @classmethod
    def of_cell(cls, metadata: dict) -> "Tolerance":
        """The tolerance a cell's metadata states (none: exact up to rounding)."""
        stated = metadata.get("tolerance")
        if stated is None:
            return cls()
        if not str(stated.get("why", "")).strip():
            raise ValueError(f"a cell's tolerance must say why: {stated}")
        return cls(rtol=float(stated.get("rtol", 0.0)), atol=float(stated.get("atol", 0.0)))

    @property
    def widened(self) -> bool:
        return self.rtol > 0 or self.atol > 0


def last_digit_unit(printed: str) -> float:
    """One unit in the last printed digit of a decimal (``"0.0864"`` -> 1e-4, ``"2.5e-05"`` -> 1e-6); 0 for integers."""
    mantissa, _, exponent = printed.lower().replace(",", "").partition("e")
    if "." not in mantissa and not exponent:
        return 0.0
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_agree(stored: str, fresh: str, tolerance: Tolerance) -> bool:
    """Whether two printed numbers agree: within one unit of the last digit, widened by ``tolerance``."""
    if not tolerance.widened and last_digit_unit(stored) == 0.0:
        return stored == fresh
    a, b = float(stored.replace(",", "")), float(fresh.replace(",", ""))
    unit = max(last_digit_unit(stored), last_digit_unit(fresh))
    allowed = unit + tolerance.atol + tolerance.rtol * abs(a)
    return math.isclose(a, b, rel_tol=0.0, abs_tol=allowed * (1 + 1e-9))


def outputs_agree(stored: str, fresh: str, tolerance: Tolerance) -> bool:
    """Whether two printed outputs agree: the same text, and numbers that agree one by one."""
    if stored == fresh:
        return True
    stored_numbers, fresh_numbers = NUMBER.findall(stored), NUMBER.findall(fresh)
    stored_text = [SPACES.sub(" ", part) for part in NUMBER.split(stored)]
    fresh_text = [SPACES.sub(" ", part) for part in NUMBER.split(fresh)]
    if stored_text != fresh_text or len(stored_numbers) != len(fresh_numbers):
        return False
    return all(numbers_agree(s, f, tolerance) for s, f in zip(stored_numbers, fresh_numbers))


class ComparedOutput(str):
    """A sanitized output string whose ``==`` is :func:`outputs_agree` (what nbval's comparison uses)."""

    tolerance = Tolerance()

    def __new__(cls, text: str, tolerance: Tolerance):
        self = super().__new__(cls, text)
        self.tolerance = tolerance
        return self

    def __eq__(self, other):
        return isinstance(other, str) and outputs_agree(str(self), str(other), self.tolerance)

    def __ne__(self, other):
        return not self == other

    __hash__ = str.__hash__


def pytest_configure(config):
    """Teach nbval's cells to compare their outputs with :class:`ComparedOutput`."""
    if not config.pluginmanager.hasplugin("nbval"):
        return
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell.sanitize, "compares_numbers", False):
        return
    sanitize = IPyNbCell.sanitize

    def sanitize_and_compare_numbers(self, s):
        s = sanitize(self, s)
        if not isinstance(s, str):
            return s
        return ComparedOutput(s, Tolerance.of_cell(self.cell.get("metadata", {})))

    sanitize_and_compare_numbers.compares_numbers = True
    IPyNbCell.sanitize = sanitize_and_compare_numbers
