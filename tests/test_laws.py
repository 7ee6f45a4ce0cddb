"""Every law in the catalogue, without MCMC: formula, numerical range, gradients.

Parametrized over the registry, so a new law is covered as soon as it is registered.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest

from bayescale.errors import UnknownLawError
from bayescale.law import build_model
from bayescale.models import LAWS, get_law

# The documented numerical range: every law must stay finite over it in float32. Curve laws
# read progress x and learning-rate area S1 in units of the fit's reference (1 at the last
# observed checkpoint), the annealed fraction S2, and raw steps.
RANGES = {
    "N": (1e5, 1e13),
    "D": (1e6, 1e14),
    "C": (1e12, 1e27),
    "x": (1e-3, 1e2),
    "S1": (1e-3, 1e2),
    "S2": (0.0, 1.0),
    "step": (1.0, 1e7),
}


# NumPy references written in the papers' own parameters (the derived constants), in
# float64: an independent statement of each formula.
def _kaplan_1d(variable, with_floor):
    def reference(p, x):
        term = (p[f"{variable}c"] / x[variable]) ** p[f"a{variable}"]
        return p["E"] + term if with_floor else term

    return reference


def _split(p):
    """Floor E and reducible part R at the reference from the level and the ratio."""
    total = np.exp(p["log_L_ref"])
    return total / (1 + np.exp(p["log_ratio"])), total * np.exp(p["log_ratio"]) / (1 + np.exp(p["log_ratio"]))


def _end_anchored(g):
    """L = E + R g(x) / g(1), the Domhan families sampled at x = 1."""

    def reference(p, x):
        floor, reducible = _split(p)
        return floor + reducible * g(p, x["x"]) / g(p, 1.0)

    return reference


def _kaplan_ns(p, x):
    total, ratio = np.exp(p["log_L_ref"]), np.exp(p["log_ratio"])
    n_term, s_term = total * ratio / (1 + ratio), total / (1 + ratio)
    return n_term * (x["N"] / 1e9) ** -p["aN"] + s_term * (x["step"] / 1e4) ** -p["aS"]


def _lr_annealing(p, x):
    floor, reducible = _split(p)
    return floor * (1 - p["phi"] * x["S2"]) + reducible * x["S1"] ** -p["alpha"]


REFERENCES = {
    "chinchilla": lambda p, x: p["E"] + p["A"] / x["N"] ** p["alpha"] + p["B"] / x["D"] ** p["beta"],
    "pow3": _end_anchored(lambda p, x: x ** -p["alpha"]),
    "pow4": _end_anchored(lambda p, x: (x + np.exp(p["log_x0"])) ** -p["alpha"]),
    "log_power": _end_anchored(lambda p, x: 1 / (1 + (x / np.exp(p["log_x0"])) ** p["alpha"])),
    "exp4": _end_anchored(lambda p, x: np.exp(-np.exp(p["log_a"]) * x ** p["alpha"])),
    "ilog2": _end_anchored(lambda p, x: 1 / np.log(1 + x / np.exp(p["log_x0"]))),
    "janoschek": _end_anchored(lambda p, x: np.exp(-np.exp(p["log_kappa"]) * x ** p["delta"])),
    "weibull": _end_anchored(lambda p, x: np.exp(-((np.exp(p["log_kappa"]) * x) ** p["delta"]))),
    "mmf": _end_anchored(lambda p, x: 1 / (1 + (np.exp(p["log_kappa"]) * x) ** p["delta"])),
    "vapor_pressure": lambda p, x: np.exp(p["log_L_ref"] - p["b"] + p["b"] / x["x"] + p["c"] * np.log(x["x"])),
    "kaplan_ns": _kaplan_ns,
    "lr_annealing": _lr_annealing,
    "kaplan_nd": lambda p, x: ((p["Nc"] / x["N"]) ** (p["aN"] / p["aD"]) + p["Dc"] / x["D"]) ** p["aD"],
    **{
        f"kaplan_{v.lower()}{'_e' if floor else ''}": _kaplan_1d(v, floor)
        for v, floor in itertools.product("NDC", (False, True))
    },
}


def _prior_draws(law, key, num):
    """Parameter draws from the law's priors, with the derived quantities."""
    draws = {name: prior.sample(k, (num,)) for (name, prior), k in zip(law.priors.items(), jax.random.split(key, len(law.priors)))}
    return draws


def _grid(law, num=7):
    """A grid over the documented range of each input (an outer product for two inputs)."""
    axes = [(np.geomspace if RANGES[name][0] > 0 else np.linspace)(*RANGES[name], num) for name in law.inputs]
    mesh = np.meshgrid(*axes, indexing="ij")
    return {name: values.ravel() for name, values in zip(law.inputs, mesh, strict=True)}


def test_registry_names_match_laws():
    assert all(name == law.name for name, law in LAWS.items())
    assert {"kaplan_n", "kaplan_d", "kaplan_c", "kaplan_nd", "chinchilla"} <= set(LAWS)


def test_every_law_has_a_reference():
    assert set(LAWS) <= set(REFERENCES), f"add a NumPy reference for {sorted(set(LAWS) - set(REFERENCES))}"


def test_unknown_law_lists_known_names():
    with pytest.raises(UnknownLawError, match="chinchilla"):
        get_law("chinchila")


@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_log_mean_matches_reference(law, key):
    with jax.enable_x64(True):
        draws = _prior_draws(law, key, 20)
        inputs = _grid(law, 5)
        compared = 0
        for i in range(20):
            params = {name: values[i] for name, values in draws.items()}
            derived = {name: float(derive(params)) for name, derive in law.derived.items()}
            with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):  # the reference under- or overflows where the log-space law does not
                expected = REFERENCES[law.name]({**{k: float(v) for k, v in params.items()}, **derived}, inputs)
            actual = np.asarray(law.log_mean(params, {k: jnp.asarray(v) for k, v in inputs.items()}))
            finite = np.isfinite(expected) & (expected > 0)
            compared += finite.sum()
            np.testing.assert_allclose(actual[finite], np.log(expected[finite]), rtol=1e-9, atol=1e-9)
        # The reference may under- or overflow for extreme prior draws, but not for most.
        assert compared > 0.5 * 20 * len(actual)


@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_finite_in_float32_over_documented_range(law, key):
    draws = _prior_draws(law, key, 64)
    inputs = {name: jnp.asarray(values, jnp.float32) for name, values in _grid(law).items()}
    log_mean = jax.vmap(law.log_mean, in_axes=(0, None))(draws, inputs)
    assert log_mean.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(log_mean)))
    grads = jax.vmap(jax.grad(lambda p: law.log_mean(p, inputs).sum()))(draws)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads.values())


@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_gradient_matches_central_differences(law, key):
    with jax.enable_x64(True):
        inputs = {name: jnp.asarray(values) for name, values in _grid(law, 4).items()}
        params = {name: values[0] for name, values in _prior_draws(law, key, 1).items()}

        def total(p):
            return law.log_mean(p, inputs).sum()

        gradient = jax.grad(total)(params)
        # Central differences: step eps^(1/3) balances truncation and rounding error.
        for name, value in params.items():
            step = np.finfo(np.float64).eps ** (1 / 3) * max(1.0, abs(float(value)))
            up = total({**params, name: value + step})
            down = total({**params, name: value - step})
            numeric = (up - down) / (2 * step)
            np.testing.assert_allclose(gradient[name], numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_model_log_density_finite_in_float32(law, key):
    inputs = {name: jnp.asarray(values, jnp.float32) for name, values in _grid(law).items()}
    n = len(next(iter(inputs.values())))
    # Losses from 0.3 to 12 nats: the documented range of observations.
    log_loss = jnp.log(jnp.geomspace(0.3, 12.0, n, dtype=jnp.float32))
    model = build_model(law, "student_t")
    for draw_key in jax.random.split(key, 8):
        seeded = numpyro.handlers.seed(model, draw_key)
        trace = numpyro.handlers.trace(seeded).get_trace(inputs, log_loss)
        log_density = sum(jnp.sum(site["fn"].log_prob(site["value"])) for site in trace.values() if site["type"] == "sample")
        assert bool(jnp.isfinite(log_density))


@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_laws_are_documented(law):
    module = __import__(law.log_mean.__module__, fromlist=["__doc__"])
    assert module.__doc__ and law.reference and law.formula
    assert set(law.exponents) <= set(law.priors)
