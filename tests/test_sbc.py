"""Simulation-based calibration: ranks of true parameters among posterior draws are uniform.

The default suite checks the rank test itself without NUTS, and runs one short SBC of a
cheap law beside a negative control that SBC must reject. Every law of the catalogue gets
the full SBC with ``--runslow``; ``benchmarks/sbc.py`` runs the same checks, with the
same keys, and tabulates them.
"""

import dataclasses

import jax
import numpy as np
import pytest
from bayescale.models import LAWS, get_law

import bayescale as bs
from bayescale.testing import rank_uniformity, sbc, sbc_design

# The short SBC: a law of two parameters, 20 simulations, ranks among 19 draws in 4 bins
# (5 simulations per bin). Its 2 x 150 draws hold the 19 near-independent ones the ranks
# need; 200 warmup iterations suffice after the Laplace whitening.
SHORT_LAW = "exact_match"
SHORT = {"num_simulations": 20, "num_draws": 19, "num_bins": 4}
SHORT_CONFIG = bs.SamplerConfig(num_warmup=200, num_samples=150, num_chains=2)
# The negative control's simulator adds 0.1 to the law's log mean, a 10% error in the
# loss: a bug of the size of a mistaken constant. The law cannot absorb it at every lm_loss,
# so the fitted noise grows and its truth ranks low.
MEAN_OFFSET = 0.1


@pytest.fixture(scope="module")
def short_runs():
    """The short SBC of SHORT_LAW and its negative control (one compiled program for both)."""
    law = get_law(SHORT_LAW)
    design = sbc_design(law, rng=np.random.default_rng(0))
    key = jax.random.key(0)
    calibrated = sbc(law, design, key=key, config=SHORT_CONFIG, **SHORT)
    offset = dataclasses.replace(law, log_mean=lambda p, x: law.log_mean(p, x) + MEAN_OFFSET)
    miscalibrated = sbc(law, design, key=key, config=SHORT_CONFIG, simulate_from=offset, **SHORT)
    return calibrated, miscalibrated


def test_short_sbc_passes(short_runs):
    calibrated, _ = short_runs
    assert calibrated.parameters == ("log_k", "x0", "sigma")
    assert calibrated.ranks.shape == (20, 3)
    assert calibrated.passed, calibrated.p_values


def test_short_sbc_rejects_a_simulator_that_disagrees_with_the_model(short_runs):
    _, miscalibrated = short_runs
    assert not miscalibrated.passed, miscalibrated.p_values


def test_uniform_counts_pass_and_piled_ranks_fail():
    # 40 ranks in 0 ... 19: two in each possible value, or all at the bottom.
    spread = np.repeat(np.arange(20), 2)[:, None]
    piled = np.zeros((40, 1), dtype=int)
    assert rank_uniformity(spread, num_draws=19, num_bins=4)[0] == 1.0
    assert rank_uniformity(piled, num_draws=19, num_bins=4)[0] < 1e-5


def test_rank_test_is_correctly_sized():
    # Under uniform ranks, P(p <= t) = t at every value t the discrete statistic attains:
    # checked at the attainable level nearest below 0.05, within four binomial standard errors.
    rng = np.random.default_rng(0)
    columns = 4000
    p_values = rank_uniformity(rng.integers(0, 20, size=(20, columns)), num_draws=19, num_bins=4)
    level = p_values[p_values <= 0.05].max()
    share = np.mean(p_values <= level)
    assert abs(share - level) < 4 * np.sqrt(level * (1 - level) / columns), (share, level)


def test_default_settings_detect_a_posterior_biased_by_one_sd():
    # Ranks of a truth drawn from N(0, 1) among 49 draws of N(1, 1), a posterior off by its
    # own sd, for 50 simulations: at the threshold of a law of four parameters the test
    # rejects with probability about 0.98 (sbc's docstring); 0.9 leaves four binomial
    # standard errors over 200 replicates.
    rng = np.random.default_rng(1)
    replicates = 200
    truth = rng.normal(size=(50, replicates, 1))
    ranks = np.sum(rng.normal(1.0, 1.0, size=(50, replicates, 49)) < truth, axis=-1)
    assert np.mean(rank_uniformity(ranks, num_draws=49, num_bins=5) < 0.001 / 4) > 0.9


def test_bins_must_split_the_ranks_evenly():
    with pytest.raises(ValueError, match="equal bins"):
        rank_uniformity(np.zeros((10, 1), dtype=int), num_draws=20, num_bins=4)


def test_sbc_design_covers_every_law_of_the_catalogue():
    for name, law in LAWS.items():
        design = sbc_design(law, rng=np.random.default_rng(0))
        assert set(law.inputs) <= design.keys(), name
        assert all(len(values) == 40 for values in design.values()), name


# Every law of the catalogue passes (benchmarks/results/sbc.md); a law added to LAWS is
# checked here too.
@pytest.mark.slow
@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_full_sbc(law, key):
    result = sbc(law, sbc_design(law, rng=np.random.default_rng(0)), key=key)
    assert result.passed, (
        f"{law.name}: min p {result.min_p_value:.2g} < {result.threshold:.2g}; p-values {result.p_values}; "
        f"{np.sum(~result.healthy)} unhealthy fits, {result.autocorrelated} with ESS below {result.num_draws}"
    )
