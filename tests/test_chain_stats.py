"""chain_statistics against ArviZ's own diagnostics (through bayescale._arviz), element by element."""

import numpy as np
import pytest

from bayescale import _arviz
from bayescale._chain_stats import chain_statistics


def _arviz_statistics(draws: np.ndarray) -> dict[str, np.ndarray]:
    data = _arviz.from_groups({"posterior": {"x": draws}}, {"x": [f"dim_{i}" for i in range(draws.ndim - 2)]}, {})
    # ArviZ's arithmetic warns on the degenerate draws (0 / 0 in the R-hat of constant draws,
    # inf - inf with infinite ones) as it returns NaN; the values are what is compared here.
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "r_hat": _arviz.rhat(data, ["x"])["x"],
            "ess_bulk": _arviz.ess(data, ["x"], "bulk")["x"],
            "ess_tail": _arviz.ess(data, ["x"], "tail")["x"],
            "mcse_mean": _arviz.mcse(data, ["x"])["x"],
        }


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float) -> np.ndarray:
    """Stationary AR(1) chains along axis 1."""
    noise = rng.normal(size=shape)
    draws = np.empty(shape)
    draws[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, shape[1]):
        draws[:, t] = phi * draws[:, t - 1] + noise[:, t]
    return draws


def _degenerate(rng: np.random.Generator) -> np.ndarray:
    draws = rng.normal(size=(4, 100, 6))
    draws[..., 0] = 3.0  # constant: ArviZ gives NaN R-hat, ESS = all draws, MCSE 0
    draws[..., 1] = np.arange(4)[:, None]  # each chain constant, chains apart
    draws[0, 5, 2] = np.nan  # NaN throughout
    draws[1, 7, 3] = np.inf
    draws[:, :60, 4] = np.inf  # the folded draws about an infinite median are NaN
    draws[..., 5] = 1 + 1e-16 * rng.integers(0, 2, size=(4, 100))  # range below float resolution
    return draws


def _sticky(rng: np.random.Generator) -> np.ndarray:
    # Draws from 8 arbitrary doubles per element tie at the tail quantiles. For some of these
    # values ArviZ 0.x's mquantiles interpolates between two equal draws to an ulp beside them
    # where ArviZ 1.x's numpy.quantile does not, so the tied draws fall on different sides of
    # the quantile and the two lines' tail ESS differ (in 8 of these 400 elements).
    values = rng.normal(size=(400, 8))
    return values[np.arange(400), rng.integers(0, 8, size=(4, 1000, 400))]


CASES = {
    "normal": lambda rng: rng.normal(size=(4, 1000, 3)),
    "shifted_chain": lambda rng: rng.normal(size=(4, 1000, 3)) + np.array([0.0, 0.0, 0.0, 2.0])[:, None, None],
    "ar1_high_correlation": lambda rng: _ar1(rng, (4, 1000, 3), 0.98),
    "student_t_1.5": lambda rng: rng.standard_t(1.5, size=(4, 1000, 2, 5)),
    "odd_draws": lambda rng: rng.normal(size=(4, 999, 3)),
    "two_chains_odd": lambda rng: _ar1(rng, (2, 501, 2, 5), 0.7),
    "ties_rounded": lambda rng: np.round(rng.normal(size=(4, 1000, 2, 5)), 1),
    "ties_few_values": lambda rng: rng.integers(0, 3, size=(2, 1000, 3)).astype(float),
    "ties_sticky": _sticky,
    "degenerate": _degenerate,
    "one_chain": lambda rng: rng.normal(size=(1, 200, 3)),
    "five_draws": lambda rng: rng.normal(size=(3, 5, 3)),
    "three_draws": lambda rng: rng.normal(size=(2, 3, 3)),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_arviz(case):
    draws = CASES[case](np.random.default_rng(sorted(CASES).index(case)))
    ours = chain_statistics(draws)
    theirs = _arviz_statistics(draws)
    assert set(ours) == set(theirs)
    for name, expected in theirs.items():
        assert ours[name].shape == draws.shape[2:]
        np.testing.assert_allclose(ours[name], expected, rtol=1e-10, atol=0, err_msg=name)


def test_shifted_chain_and_autocorrelation_are_flagged():
    rng = np.random.default_rng(0)
    shifted = chain_statistics(CASES["shifted_chain"](rng))
    assert np.all(shifted["r_hat"] > 1.1)
    sticky = chain_statistics(_ar1(rng, (4, 1000, 3), 0.98))
    assert np.all(sticky["ess_bulk"] < 400)
