"""The comparison nbval uses for the chapters' outputs (tests/nbval_tolerance.py)."""

import pytest

from nbval_tolerance import ComparedOutput, Tolerance, last_digit_unit, outputs_agree

EXACT = Tolerance()


@pytest.mark.parametrize("printed, unit", [("0.0864", 1e-4), ("27.03", 1e-2), ("-1.5", 0.1), ("2.5e-05", 1e-6),
                                           ("1e-3", 1e-3), ("300", 0.0), ("1,114,532", 0.0)])
def test_last_digit_unit(printed, unit):
    assert last_digit_unit(printed) == pytest.approx(unit, rel=1e-12, abs=0)


def test_a_rounding_that_falls_the_other_way_is_accepted():
    assert outputs_agree("FD from  9.80 to 27.03, mean 17.88", "FD from  9.80 to 27.04, mean 17.88", EXACT)
    assert outputs_agree("beta 1.0525 z = -0.01", "beta 1.0526 z = 0.00", EXACT)


def test_more_than_one_unit_of_the_last_digit_is_refused():
    assert not outputs_agree("mean 0.0861", "mean 0.0864", EXACT)
    assert not outputs_agree("largest output 2.40", "largest output 2.42", EXACT)


def test_integers_and_text_must_match():
    assert not outputs_agree("300 steps", "301 steps", EXACT)
    assert not outputs_agree("1,114,532 parameters", "1,114,533 parameters", EXACT)
    assert not outputs_agree("loss 0.50 (L2)", "loss 0.50 (L1)", EXACT)
    assert not outputs_agree("a 1.0 b 2.0", "a 1.0 b", EXACT)
    assert not outputs_agree("True", "False", EXACT)


def test_only_the_width_of_spaces_may_change():
    assert outputs_agree("x  9.99 |", "x 10.00 |", EXACT)
    assert not outputs_agree("x 9.99 |", "x 9.99|", EXACT)


def test_a_stated_tolerance_widens_every_number():
    loose = Tolerance(rtol=0.01, atol=0.001)
    assert outputs_agree("0.0861 +- 0.0035", "0.0864 +- 0.0036", loose)
    assert not outputs_agree("0.0861 +- 0.0035", "0.0900 +- 0.0035", loose)
    assert outputs_agree("300 steps", "301 steps", Tolerance(rtol=0.01))


def test_a_tolerance_must_say_why():
    assert Tolerance.of_cell({}) == EXACT
    assert Tolerance.of_cell({"tolerance": {"rtol": 0.02, "why": "trained in float32"}}) == Tolerance(rtol=0.02)
    with pytest.raises(ValueError, match="why"):
        Tolerance.of_cell({"tolerance": {"rtol": 0.02}})


def test_nbval_compares_through_the_plugin():
    stored, fresh = ComparedOutput("mean 27.03", EXACT), ComparedOutput("mean 27.04", EXACT)
    assert not (stored != fresh)  # nbval's test is `ref_out != test_out`
    assert ComparedOutput("mean 27.03", EXACT) != ComparedOutput("mean 27.06", EXACT)
