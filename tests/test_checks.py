import numpy as np
import pytest

from utils import checks


@pytest.mark.parametrize("value", [0, 3, np.int64(7)])
def test_whole_number_takes_integers(value):
    assert checks.whole_number(value, "n") == int(value) and type(checks.whole_number(value, "n")) is int


@pytest.mark.parametrize("value", [True, 2.0, "3", None, -1])
def test_whole_number_refuses_everything_else(value):
    with pytest.raises(ValueError, match=r"n must be a whole number >= 0 \(images per case\); got"):
        checks.whole_number(value, "n", hint="images per case")


def test_whole_number_minimum():
    assert checks.whole_number(1, "steps", minimum=1) == 1
    with pytest.raises(ValueError, match=">= 1; got 0"):
        checks.whole_number(0, "steps", minimum=1)


@pytest.mark.parametrize("value", [0, 0.5, np.float32(2.5), "x", None, float("nan"), float("inf"), True, -0.1])
def test_finite_number(value):
    ok = value in (0, 0.5) or isinstance(value, np.floating)
    if ok:
        assert checks.finite_number(value, "jitter", minimum=0) == float(value)
    else:
        with pytest.raises(ValueError, match="jitter must be a finite number >= 0"):
            checks.finite_number(value, "jitter", minimum=0)


def test_finite_number_without_a_bound_takes_negatives():
    assert checks.finite_number(-3, "shift") == -3.0


def test_one_of():
    assert checks.one_of("box", ("box", "points"), "prompt kind") == "box"
    with pytest.raises(ValueError, match=r"Unknown prompt kind 'boxes'; choose one of: box, points\."):
        checks.one_of("boxes", ("box", "points"), "prompt kind")
    with pytest.raises(ValueError, match="Unknown"):
        checks.one_of(["box"], ("box",), "prompt kind")  # unhashable: refused, not a TypeError
