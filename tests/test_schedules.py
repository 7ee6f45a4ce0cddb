"""Learning-rate schedules and the annealing areas S1, S2 read by the ``lr_annealing`` law."""

import math

import numpy as np
import pytest

from bayescale.errors import DataError
from bayescale.schedules import ANNEALING_MOMENTUM, annealing_features, named_schedule, parse_schedule, schedule_from_points


def test_named_schedules_have_their_shapes():
    cosine = named_schedule("cosine", peak=1.0, final=0.1, warmup=10, total=110).rates
    assert cosine[10] == pytest.approx(1.0) and cosine[110] == pytest.approx(0.1)
    assert cosine[60] == pytest.approx(0.55)  # halfway through the cosine: the mean of peak and final
    assert np.all(np.diff(cosine[10:]) <= 1e-12)
    wsd = named_schedule("wsd", peak=2.0, final=0.0, total=100, decay=0.2).rates
    assert np.all(wsd[:80] == 2.0) and wsd[90] == pytest.approx(1.0) and wsd[100] == 0.0
    linear = named_schedule("linear", peak=1.0, final=0.0, warmup=0, total=10).rates
    np.testing.assert_allclose(linear, np.linspace(1.0, 0.0, 11))


def test_parse_schedule_matches_named_schedule():
    parsed = parse_schedule("cosine:peak=3e-4,final=3e-5,warmup=2160,total=24000")
    direct = named_schedule("cosine", peak=3e-4, final=3e-5, warmup=2160, total=24000)
    np.testing.assert_array_equal(parsed.rates, direct.rates)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("triangle:peak=1,total=10", "unknown schedule"),
        ("cosine:peak=1", "needs total="),
        ("cosine:peak=x,total=10", "not key=number"),
        ("cosine:peak=1,total=10,steps=3", "unknown steps"),
        ("cosine:peak=1,final=2,total=10", "final <= peak"),
    ],
)
def test_bad_schedule_specs_say_what_is_wrong(text, expected):
    with pytest.raises(DataError, match=expected):
        parse_schedule(text)


def test_forward_area_counts_steps_at_the_peak_rate():
    features = annealing_features(named_schedule("constant", peak=3e-4, warmup=100, total=1000), [100, 1000])
    # The warmup (steps 0-99) covers (1 + ... + 100) / 100 = 50.5 peak-steps; each step
    # from 100 on adds one, the step itself included.
    np.testing.assert_allclose(features["S1"], [51.5, 951.5])
    np.testing.assert_array_equal(features["S2"], [0.0, 0.0])


def test_annealing_area_of_a_step_drop_matches_the_closed_form():
    # A drop from 1 to 0.3 at step 100: m_i = 0.7 lambda^(i-100), so (1 - lambda) sum m
    # = 0.7 (1 - lambda^(k+1)) after k further steps.
    rates = np.where(np.arange(5001) < 100, 1.0, 0.3)
    schedule = schedule_from_points(np.arange(5001), rates, "drop", 5000)
    steps = np.array([99, 100, 600, 5000])
    expected = 0.7 * (1 - ANNEALING_MOMENTUM ** (np.maximum(steps - 100, -1) + 1))
    np.testing.assert_allclose(annealing_features(schedule, steps)["S2"], expected, rtol=1e-10, atol=1e-12)


def test_complete_anneal_approaches_one():
    schedule = named_schedule("linear", peak=1.0, final=0.0, total=1000)
    extended = schedule_from_points(np.arange(20_001), np.r_[schedule.rates, np.zeros(19_000)], "annealed", 20_000)
    assert annealing_features(extended, [20_000])["S2"][0] == pytest.approx(1.0, abs=math.exp(-15))


def test_points_before_the_first_logged_step_are_a_linear_warmup():
    schedule = schedule_from_points(np.array([100, 200]), np.array([1.0, 0.5]), "logged", 300)
    assert schedule.rates[50] == pytest.approx(0.5)
    assert schedule.rates[150] == pytest.approx(0.75)
    assert schedule.rates[300] == pytest.approx(0.5)


def test_features_beyond_the_schedule_are_an_error():
    with pytest.raises(DataError, match="covers steps up to 10"):
        annealing_features(named_schedule("constant", peak=1.0, total=10), [11])
