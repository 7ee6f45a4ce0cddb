"""Learning-rate schedules, the annealing areas S1, S2 of ``lr_annealing`` and the binned
decreases of ``multi_power``."""

import math

import numpy as np
import pytest

from bayescale.errors import DataError
from bayescale.schedules import (
    ANNEALING_MOMENTUM,
    DROP_BINS,
    annealing_features,
    drop_features,
    named_schedule,
    parse_schedule,
    schedule_from_points,
)


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


def test_drop_features_beyond_the_schedule_are_an_error():
    with pytest.raises(DataError, match="covers steps up to 10"):
        drop_features(named_schedule("constant", peak=1.0, total=10), [11])


def test_drops_of_a_step_schedule_sit_in_the_bin_of_their_area():
    # A drop from 1 to 0.25 at step 100: at step t the area since is 0.25 (t - 99) steps at
    # the peak rate, so the whole decrease 0.75 sits in one bin, at that log area and rate.
    rates = np.where(np.arange(5001) < 100, 1.0, 0.25)
    schedule = schedule_from_points(np.arange(5001), rates, "drop", 5000)
    steps = np.array([50, 100, 163, 5000])
    features = drop_features(schedule, steps)
    np.testing.assert_array_equal(features["drop_mass"][0], np.zeros(DROP_BINS))
    for row, step in enumerate(steps[1:], start=1):
        area = 0.25 * (step - 99)
        expected_bin = max(0, int(math.floor(math.log2(area))) + 1)
        mass = np.zeros(DROP_BINS)
        mass[expected_bin] = 0.75
        np.testing.assert_allclose(features["drop_mass"][row], mass, atol=1e-12)
        assert features["drop_log_area"][row, expected_bin] == pytest.approx(math.log(area))
        assert features["drop_log_rate"][row, expected_bin] == pytest.approx(math.log(0.25))


def test_drop_masses_sum_to_the_decrease_so_far_and_ignore_the_warmup():
    schedule = named_schedule("cosine", peak=3e-4, final=3e-5, warmup=200, total=10_000)
    steps = np.array([100, 200, 3_000, 10_000])
    relative = schedule.rates / schedule.rates.max()
    after_warmup = np.where(steps >= 200, 1.0 - relative[steps], 0.0)
    np.testing.assert_allclose(drop_features(schedule, steps)["drop_mass"].sum(axis=1), after_warmup, atol=1e-12)


def _response_curvature_bound(beta):
    """sup over u of |d^2/du^2 (1 - (1 + e^u)^-beta)|, on a fine grid."""
    u = np.linspace(-40, 40, 400_001)
    g = -np.expm1(-beta * np.logaddexp(0.0, u))
    return np.max(np.abs(np.gradient(np.gradient(g, u), u)))


@pytest.mark.parametrize(
    "schedule",
    [
        named_schedule("cosine", peak=3e-4, final=3e-5, warmup=2160, total=24_000),
        named_schedule("wsd", peak=3e-4, final=0.0, warmup=2160, total=24_000, decay=0.15),
        named_schedule("linear", peak=3e-4, final=1e-5, warmup=100, total=24_000),
    ],
    ids=["cosine", "wsd", "linear"],
)
def test_binned_drop_matches_the_multi_power_sum_over_every_step(schedule):
    """The Multi-Power Law's drop summed over every step against its evaluation on the bins.

    Within a bin the response is taken at the mean of u = log C + log S_k - gamma log eta_k;
    by Jensen the error per unit of decrease is at most sup|G''| h^2 / 8, for h the spread
    of u in the bin: log 2 in area, plus gamma times the spread of log rate in the bin."""
    relative = schedule.rates / schedule.rates.max()
    decreases = np.concatenate([[0.0], relative[:-1] - relative[1:]])
    decreases[: int(np.argmax(relative)) + 1] = 0.0
    forward = np.cumsum(relative)
    steps = np.array([2_500, 8_000, 16_000, 23_000, 24_000])
    features = drop_features(schedule, steps)
    for log_C in (-6.0, -3.0, 0.0):
        for beta in (0.3, 1.0, 2.0):
            for gamma in (0.2, 0.8):
                bound = _response_curvature_bound(beta) / 8
                for row, step in enumerate(steps):
                    k = np.flatnonzero(decreases[: step + 1])
                    # A schedule that ends at rate 0 leaves its last decrease no area: floored,
                    # as drop_features does.
                    area = np.maximum(forward[step] - forward[k] + relative[k], 1e-12)
                    u = log_C + np.log(area) - gamma * np.log(np.maximum(relative[k], 1e-12))
                    exact = np.sum(decreases[k] * -np.expm1(-beta * np.logaddexp(0.0, u)))
                    binned_u = log_C + features["drop_log_area"][row] - gamma * features["drop_log_rate"][row]
                    binned = np.sum(features["drop_mass"][row] * -np.expm1(-beta * np.logaddexp(0.0, binned_u)))
                    bins = np.clip(np.floor(np.log2(area)).astype(int) + 1, 0, DROP_BINS - 1)
                    log_rate = np.log(np.maximum(relative[k], 1e-12))
                    spread = np.array(
                        [np.ptp(log_rate[bins == b]) if np.any(bins == b) else 0.0 for b in range(DROP_BINS)]
                    )
                    width = np.log(2.0) + gamma * spread
                    allowed = bound * np.sum(features["drop_mass"][row] * width**2) + 1e-12
                    assert abs(binned - exact) <= allowed, (log_C, beta, gamma, step, binned, exact, allowed)
