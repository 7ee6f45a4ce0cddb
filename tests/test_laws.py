"""Every law in the catalogue, without MCMC: formula, numerical range, gradients.

Parametrized over the registry, so a new law is covered as soon as it is registered.
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from bayescale.models import LAWS, get_law
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import log_density, potential_energy
from scipy.integrate import quad
from scipy.optimize import brentq

from bayescale._sampler import _compiler_options
from bayescale.data import ScalingData
from bayescale.errors import UnknownLawError
from bayescale.inference import model_args
from bayescale.law import NOISE_PRIORS, ModelSpec, SplitLogNormal, whitened_level_name
from bayescale.schedules import DROP_BINS

# The documented numerical range: every law must stay finite over it in float32. Curve laws
# read progress x and learning-rate area S1 in units of the fit's reference (1 at the last
# observed checkpoint), the annealed fraction S2, and raw steps. Unique tokens U span the
# range of D; on the grid (an outer product) U above D is read by the law as U = D.
RANGES = {
    "N": (1e5, 1e13),
    "D": (1e6, 1e14),
    "U": (1e6, 1e14),
    "C": (1e12, 1e27),
    "x": (1e-3, 1e2),
    "x_first": (1e-3, 1e2),
    "S1": (1e-3, 1e2),
    "S2": (0.0, 1.0),
    "step": (1.0, 1e7),
    # Language-modelling loss in nats, the input of the downstream links.
    "lm_loss": (0.5, 10.0),
    # The Multi-Power Law's binned decreases (a value per bin, see BINNED): the total
    # decrease (1 for a complete anneal), log areas from one step at a millionth of the
    # peak in a 1e7-step run to 100 observed runs, log rates down to the floor of 1e-12.
    "drop_mass": (0.0, 1.0),
    "drop_log_area": (-40.0, 5.0),
    "drop_log_rate": (-27.6, 0.0),
}
# Inputs with a value per bin: on the grid each level fills every bin (the mass split
# evenly, so that it sums to the level).
BINNED = {"drop_mass": DROP_BINS, "drop_log_area": DROP_BINS, "drop_log_rate": DROP_BINS}


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


def _pow3_shift(p, x):
    floor, reducible = _split(p)
    origin = p["origin"]
    x0, x0_at_one = origin * np.minimum(x["x_first"], x["x"]), origin * np.minimum(x["x_first"], 1.0)
    return floor + reducible * ((x["x"] - x0) / (1 - x0_at_one)) ** -p["alpha"]


def _m4(p, x):
    """(L - E) / (L0 - L)^alpha = beta x^-c solved for L in (E, L0) by bracketing, in the paper's constants."""
    floor, reducible = _split(p)
    start = floor + reducible * (1 + np.exp(-p["logit_ahead"]))  # L0: the fraction ahead at x = 1 is its logistic
    beta = reducible / (start - floor - reducible) ** p["alpha"]  # the law at x = 1

    def loss(x):
        # L = E + w (L0 - E) with w in (0, 1), where the law's two sides differ in sign.
        def gap(w):
            return (
                np.log(w * (start - floor))
                - p["alpha"] * np.log((1 - w) * (start - floor))
                - np.log(beta * x ** -p["c"])
            )

        low, high = 1e-300, 1 - 2**-53
        if gap(high) <= 0:  # within float64 of the start
            return start
        if gap(low) >= 0:  # below the smallest fraction float64 holds: the reference underflows
            return np.nan
        return floor + brentq(gap, low, high, xtol=1e-300, rtol=4 * np.finfo(float).eps) * (start - floor)

    return np.vectorize(loss)(x["x"])


def _lr_annealing(p, x):
    floor, reducible = _split(p)
    return floor * (1 - p["phi"] * x["S2"]) + reducible * x["S1"] ** -p["alpha"]


def _multi_power(p, x):
    """Luo et al.'s eqs. (4)-(5) over the bins: B sum_k dEta_k (1 - (C eta_k^-gamma S_k + 1)^-beta)."""
    floor, reducible = _split(p)
    scaled_area = np.exp(p["log_C"]) * np.exp(x["drop_log_area"]) * np.exp(x["drop_log_rate"]) ** -p["gamma"]
    drop = np.sum(x["drop_mass"] * (1 - (scaled_area + 1) ** -p["beta"]), axis=-1)
    return floor * (1 - p["phi"] * drop) + reducible * x["S1"] ** -p["alpha"]


def _bnsl(num_breaks):
    """Caballero et al.'s eq. (1) in compute, with the derived b, E and break locations."""

    def reference(p, x):
        breaks = [p["C_break"], p.get("C_break2")][:num_breaks]
        total = p["b"] * x["C"] ** -p["c0"]
        for i, d in enumerate(breaks, start=1):
            power = (x["C"] / d) ** (1 / p[f"f{i}"])
            # (1 + inf)^(-c f) is 0 or inf where the true factor is merely small or large:
            # leave those points out rather than compare against a wrong reference.
            total = np.where(np.isinf(power), np.nan, total * (1 + power) ** (-p[f"c{i}"] * p[f"f{i}"]))
        return p["E"] + total

    return reference


def _data_constrained(p, x):
    """Muennighoff et al.'s eqs. (5)-(7), written directly in the paper's constants."""
    alpha, beta = p["alpha"], p["beta"]
    unique_d = np.minimum(x["U"], x["D"])
    g = (alpha * p["A"] / (beta * p["B"])) ** (1 / (alpha + beta))
    unique_n = np.minimum(x["N"], g * (g * unique_d) ** (beta / alpha))

    def effective(unique, total, r_star):
        return unique + unique * r_star * (1 - np.exp(-(total / unique - 1) / r_star))

    n_eff = effective(unique_n, x["N"], p["R_star_N"])
    d_eff = effective(unique_d, x["D"], p["R_star_D"])
    return p["E"] + p["A"] / n_eff**alpha + p["B"] / d_eff**beta


def _sigmoid_link(p, x):
    floor, span, width = np.exp(p["log_floor"]), np.exp(p["log_span"]), np.exp(p["log_width"])
    return floor + span / (1 + np.exp(-(x["lm_loss"] - p["x_mid"]) / width))


def _exact_match(p, x):
    """1 - p^k with p = exp(-per-token loss), the per-token loss log(1 + e^(x - x0))."""
    per_token_probability = 1 / (1 + np.exp(x["lm_loss"] - p["x0"]))
    return 1 - per_token_probability ** p["k"]


REFERENCES = {
    "sigmoid_link": _sigmoid_link,
    "exact_match": _exact_match,
    "bnsl": _bnsl(1),
    "bnsl2": _bnsl(2),
    "data_constrained": _data_constrained,
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
    "pow3_shift": _pow3_shift,
    "m4": _m4,
    "kaplan_ns": _kaplan_ns,
    "lr_annealing": _lr_annealing,
    "multi_power": _multi_power,
    "kaplan_nd": lambda p, x: ((p["Nc"] / x["N"]) ** (p["aN"] / p["aD"]) + p["Dc"] / x["D"]) ** p["aD"],
    **{
        f"kaplan_{v.lower()}{'_e' if floor else ''}": _kaplan_1d(v, floor)
        for v, floor in itertools.product("NDC", (False, True))
    },
}


def _prior_draws(law, key, num):
    """Parameter draws from the law's priors, with the derived quantities."""
    draws = {
        name: prior.sample(k, (num,))
        for (name, prior), k in zip(law.priors.items(), jax.random.split(key, len(law.priors)))
    }
    return draws


def _grid(law, num=7):
    """A grid over the documented range of each input (an outer product for several inputs)."""
    axes = [(np.geomspace if RANGES[name][0] > 0 else np.linspace)(*RANGES[name], num) for name in law.inputs]
    mesh = np.meshgrid(*axes, indexing="ij")
    grid = {}
    for name, values in zip(law.inputs, mesh, strict=True):
        values = values.ravel()
        if name in BINNED:
            share = BINNED[name] if name == "drop_mass" else 1
            values = np.repeat(values[:, None] / share, BINNED[name], axis=1)
        grid[name] = values
    return grid


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
            with np.errstate(
                over="ignore", divide="ignore", invalid="ignore", under="ignore"
            ):  # the reference under- or overflows where the log-space law does not
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


# Observed losses, in nats: the documented range.
LOSS_RANGE = (0.3, 12.0)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_potential_and_gradient_finite_over_documented_range(law, x64, key):
    """What NUTS evaluates (the potential in unconstrained space, and its gradient) is finite
    at prior draws and at the corners of the draws, over the corners and interior of the
    inputs' range, each input observed at the lowest and at the highest loss.

    The potential includes the model's log density, so this also covers the log density
    at prior draws in both precisions."""
    spec = ModelSpec(law, "student_t")
    model = spec.model()
    priors = {**law.priors, **{name: NOISE_PRIORS[name] for name in spec.noise}}
    with jax.enable_x64(x64):
        keys = jax.random.split(key, len(priors))
        draws = {name: biject_to(p.support).inv(p.sample(k, (64,))) for (name, p), k in zip(priors.items(), keys)}
        # Corners of the draws: one parameter at its lowest or highest draw, the rest at draw 0.
        corners = [
            {other: values[:1] if other != name else edge(values, keepdims=True) for other, values in draws.items()}
            for name in draws
            for edge in (jnp.min, jnp.max)
        ]
        points = jax.tree.map(lambda *parts: jnp.concatenate(parts), draws, *corners)
        grid = _grid(law, 5)  # the ends of every range, so every corner of the input box
        size = len(next(iter(grid.values())))
        columns = {name: np.concatenate([values, values]) for name, values in grid.items()}
        columns["loss"] = np.repeat(LOSS_RANGE, size)
        args = model_args(spec, ScalingData(columns, "range", np.arange(1, 2 * size + 1)), size=2 * size)
        # One compiled call per law and precision, compiled as the sampler's programs are.
        value_and_grad = jax.vmap(jax.value_and_grad(lambda u: potential_energy(model, args, {}, u)))
        energy, gradient = jax.jit(value_and_grad, compiler_options=_compiler_options())(points)
    assert energy.dtype == (jnp.float64 if x64 else jnp.float32)
    assert bool(jnp.all(jnp.isfinite(energy)))
    for name, values in gradient.items():
        assert bool(jnp.all(jnp.isfinite(values))), f"gradient of {name} is not finite"


@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_laws_are_documented(law):
    module = __import__(law.log_mean.__module__, fromlist=["__doc__"])
    assert module.__doc__ and law.reference and law.formula
    assert set(law.exponents) <= set(law.priors)


# Focused checks of the broken neural scaling law and the data-constrained law.


def test_bnsl_without_breaks_is_a_power_law_with_floor(key):
    # c_i = 0 removes every break, whatever its place and sharpness: what is left is
    # E + b C^-c0, which is kaplan_c_e with the same level, ratio and exponent aC = c0.
    power_law = get_law("kaplan_c_e")
    with jax.enable_x64(True):
        inputs = {"C": jnp.geomspace(1e12, 1e27, 31)}
        for law in (get_law("bnsl"), get_law("bnsl2")):
            draws = _prior_draws(law, key, 16)
            for i in range(16):
                params = {name: values[i] for name, values in draws.items()}
                params.update({f"c{j}": jnp.zeros(()) for j in range(1, len(law.exponents))})
                expected = power_law.log_mean(
                    {"log_L_ref": params["log_L_ref"], "log_ratio": params["log_ratio"], "aC": params["c0"]}, inputs
                )
                np.testing.assert_allclose(law.log_mean(params, inputs), expected, rtol=1e-12, atol=1e-12)


def test_bnsl_with_a_negative_total_exponent_turns_up():
    # c0 > 0 and c0 + c1 < 0: the loss falls before the break and rises after it (inverse,
    # U-shaped scaling), and far beyond the break the reducible term grows as C^-(c0 + c1).
    law = get_law("bnsl")
    params = {"log_L_ref": 1.0, "log_ratio": 0.0, "c0": 0.3, "c1": -0.6, "f1": 0.3, "log_d1": float(np.log(1e20))}
    log_C = np.linspace(np.log(1e14), np.log(1e27), 400)
    with jax.enable_x64(True):
        log_loss = np.asarray(law.log_mean({k: jnp.asarray(v) for k, v in params.items()}, {"C": jnp.exp(log_C)}))
    slope = np.diff(log_loss) / np.diff(log_C)
    lowest = np.argmin(log_loss)
    assert 0 < lowest < len(log_C) - 1
    assert np.all(slope[:lowest] < 0) and np.all(slope[lowest:] > 0)
    assert 1e18 < np.exp(log_C[lowest]) < 1e22  # the turn comes at the break
    # log L -> log R there (R >> E), so the slope of log L tends to -(c0 + c1) = 0.3.
    assert abs(slope[-1] - 0.3) < 0.01


def test_data_constrained_compute_optimal_size_lies_on_chinchillas_frontier(key):
    # log N*(D) inverts Chinchilla's closed-form allocation: at the budget where Chinchilla
    # puts D* tokens, N*(D*) is Chinchilla's N*.
    from bayescale.models.data_constrained import log_compute_optimal_N

    chinchilla = get_law("chinchilla")
    with jax.enable_x64(True):
        log_C = jnp.log(jnp.geomspace(1e18, 1e26, 9))
        draws = _prior_draws(get_law("data_constrained"), key, 16)
        for i in range(16):
            params = {name: values[i] for name, values in draws.items()}
            log_N = chinchilla.optimal_log_N(params, log_C)
            log_D = log_C - np.log(6.0) - log_N
            np.testing.assert_allclose(log_compute_optimal_N(params, log_D), log_N, rtol=1e-10, atol=1e-8)


def test_data_constrained_is_chinchilla_at_one_epoch(key):
    # With U = D there is no repeated token, R_D = 0 and D' = D exactly. Parameters up to
    # the compute-optimal size N*(D) count in full, so the law is Chinchilla there, to the
    # last bit; a larger model is worth less than Chinchilla says (excess parameters decay
    # like repeated data), so its loss is higher.
    from bayescale.models.data_constrained import log_compute_optimal_N, log_effective_tokens

    law, chinchilla = get_law("data_constrained"), get_law("chinchilla")
    grid = _grid(chinchilla, 9)
    for x64 in (False, True):
        with jax.enable_x64(x64):
            inputs = {name: jnp.asarray(values) for name, values in grid.items()}
            inputs["U"] = inputs["D"]
            draws = _prior_draws(law, key, 32)
            within = beyond = 0
            for i in range(32):
                params = {name: values[i] for name, values in draws.items()}
                actual = np.asarray(law.log_mean(params, inputs))
                expected = np.asarray(chinchilla.log_mean(params, inputs))
                # Against jax's log, which the law takes (numpy's may differ in the last bit).
                np.testing.assert_array_equal(log_effective_tokens(params, inputs), jnp.log(inputs["D"]))
                log_optimal_N = np.asarray(log_compute_optimal_N(params, jnp.log(inputs["D"])))
                optimal = np.log(np.asarray(inputs["N"])) <= log_optimal_N
                np.testing.assert_array_equal(actual[optimal], expected[optimal])
                assert np.all(actual[~optimal] >= expected[~optimal])
                within, beyond = within + optimal.sum(), beyond + (actual > expected).sum()
            assert within > 0 and beyond > 0


def test_data_constrained_repeated_tokens_saturate(key):
    # D' = U (1 + R*_D (1 - exp(-R_D / R*_D))) grows with every epoch but never past
    # U (1 + R*_D): a million epochs are worth 1 + R*_D epochs of fresh tokens.
    from bayescale.models.data_constrained import log_effective_tokens

    law = get_law("data_constrained")
    unique = 1e9
    epochs = np.geomspace(1.0, 1e6, 61)
    with jax.enable_x64(True):
        draws = _prior_draws(law, key, 16)
        for i in range(16):
            params = {name: values[i] for name, values in draws.items()}
            inputs = {"D": jnp.asarray(unique * epochs), "U": jnp.full(len(epochs), unique)}
            log_D_eff = np.asarray(log_effective_tokens(params, inputs))
            ceiling = np.log(unique) + np.log1p(np.exp(float(params["log_R_star_D"])))
            assert np.all(np.diff(log_D_eff) >= 0) and np.all(log_D_eff <= ceiling + 1e-12)
            np.testing.assert_allclose(log_D_eff[-1], ceiling, rtol=1e-12)
            # The first repetitions are nearly as good as fresh tokens: D' ~ D for R_D << R*_D.
            np.testing.assert_allclose(log_D_eff[1], np.log(unique * epochs[1]), atol=0.01)


# M4 contains two catalogue laws as special cases of its alpha.


def test_m4_is_log_power_at_alpha_one_and_pow3_as_alpha_vanishes(key):
    # alpha = 1: u / (1 - u) = K x^-c is the logistic 1 / (1 + (x / x0)^c), x0 = K^(1/c),
    # and log K = logit u(1). alpha -> 0: u = K x^-c, so u(x) / u(1) = x^-c, pow3's shape.
    m4, log_power, pow3 = get_law("m4"), get_law("log_power"), get_law("pow3")
    with jax.enable_x64(True):
        inputs = {"x": jnp.geomspace(1e-3, 1e2, 41)}
        draws = _prior_draws(m4, key, 16)
        for i in range(16):
            params = {name: values[i] for name, values in draws.items()}
            logistic = {**params, "alpha": jnp.ones(())}
            expected = log_power.log_mean(
                {**params, "alpha": params["c"], "log_x0": params["logit_ahead"] / params["c"]}, inputs
            )
            np.testing.assert_allclose(m4.log_mean(logistic, inputs), expected, rtol=1e-12, atol=1e-12)
            # Past x = 1 the fraction ahead u stays below u(1) < 1, so log (1 - u)^alpha is at
            # most alpha |log(1 - u(1))|: about 1e-10 at these draws, far under rtol 1e-8.
            later = {"x": inputs["x"][inputs["x"] >= 1.0]}
            power = {**params, "alpha": jnp.asarray(1e-10)}
            expected = pow3.log_mean({**params, "alpha": params["c"]}, later)
            np.testing.assert_allclose(m4.log_mean(power, later), expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    ("name", "same_as", "translate"),
    [
        ("janoschek", "exp4", lambda p: {"alpha": p["delta"], "log_a": p["log_kappa"]}),
        ("weibull", "exp4", lambda p: {"alpha": p["delta"], "log_a": p["delta"] * p["log_kappa"]}),
        ("mmf", "log_power", lambda p: {"alpha": p["delta"], "log_x0": -p["log_kappa"]}),
    ],
)
def test_domhan_rows_that_share_a_function(name, same_as, translate, key):
    # As the catalogue's docstring says: these rows differ from another by parameters and
    # priors only, so a stack's weights on them are readings of one function.
    law, other = get_law(name), get_law(same_as)
    with jax.enable_x64(True):
        inputs = {"x": jnp.geomspace(1e-3, 1e2, 41)}
        draws = _prior_draws(law, key, 16)
        for i in range(16):
            params = {parameter: values[i] for parameter, values in draws.items()}
            np.testing.assert_allclose(
                law.log_mean(params, inputs),
                other.log_mean({**params, **translate(params)}, inputs),
                rtol=1e-12,
                atol=1e-12,
            )


# The level of a learning-curve law: a uniform shift of the log mean, sampled around its
# estimate given the other parameters (see bayescale.law.build_model).

LEVELLED = {name: law for name, law in LAWS.items() if law.level}


@pytest.mark.parametrize("law", LEVELLED.values(), ids=LEVELLED.keys())
def test_the_level_shifts_the_log_mean_uniformly(law, key):
    with jax.enable_x64(True):
        inputs = {name: jnp.asarray(values) for name, values in _grid(law, 4).items()}
        draws = _prior_draws(law, key, 8)
        for i in range(8):
            params = {name: values[i] for name, values in draws.items()}
            shifted = law.log_mean({**params, law.level: params[law.level] + 0.7}, inputs)
            np.testing.assert_allclose(shifted - law.log_mean(params, inputs), 0.7, rtol=1e-12)


def test_a_level_that_is_not_a_parameter_is_rejected():
    with pytest.raises(ValueError, match="level 'log_L0' is not one of its parameters"):
        dataclasses.replace(get_law("pow3"), level="log_L0")


def _checkpoints(law, num_runs):
    """Checkpoints of ``num_runs`` runs of different lengths, with losses falling as a power law."""
    steps = [np.geomspace(10, 1000 * (run + 1), 12 + 5 * run).round() for run in range(num_runs)]
    step = np.concatenate(steps)
    columns = {
        "run": np.concatenate([np.full(len(s), f"r{run}", dtype=object) for run, s in enumerate(steps)]),
        "step": step,
        "loss": 3.0 * step**-0.1 * (1.0 + 0.01 * np.sin(step)),
        "x": step / step.max(),
        "N": np.concatenate([np.full(len(s), 1e8 * 4.0**run) for run, s in enumerate(steps)]),
    }
    return ScalingData(
        {name: columns[name] for name in ("run", "step", "loss", *law.inputs)},
        "checkpoints",
        np.arange(1, len(step) + 1),
    )


@pytest.mark.parametrize(
    ("law_name", "num_runs", "likelihood", "drift"),
    [("pow3", 1, "student_t", False), ("pow3", 2, "normal", True), ("kaplan_ns", 3, "laplace", False)],
)
def test_sampling_the_level_around_its_estimate_leaves_the_posterior_as_it_is(
    law_name, num_runs, likelihood, drift, key
):
    """The model with the level sampled through its whitened form has the log density of
    the model that samples the level directly, plus the log Jacobian of the map from the
    whitened value to the level (computed here by differentiating that map), on padded
    data with a padding run."""
    law = get_law(law_name)
    spec = ModelSpec(law, likelihood, correlated=True, drift=drift)
    direct = ModelSpec(dataclasses.replace(law, level=None), likelihood, correlated=True, drift=drift)
    with jax.enable_x64(True):
        data = _checkpoints(law, num_runs)
        args = model_args(spec, data, size=len(data) + 5, runs_size=num_runs + 1)
        trace = handlers.trace(handlers.seed(spec.model(), key)).get_trace(*args)
        latent = {
            name: site["value"] for name, site in trace.items() if site["type"] == "sample" and not site["is_observed"]
        }
        whitened = latent.pop(whitened_level_name(law.level))

        def level_of(values):
            conditioned = handlers.substitute(spec.model(), {**latent, whitened_level_name(law.level): values})
            return handlers.trace(conditioned).get_trace(*args)[law.level]["value"]

        level = level_of(whitened)
        log_jacobian = np.linalg.slogdet(np.atleast_2d(jax.jacfwd(level_of)(whitened)))[1]
        reparameterised = log_density(spec.model(), args, {}, {**latent, whitened_level_name(law.level): whitened})[0]
        expected = log_density(direct.model(), args, {}, {**latent, law.level: level})[0] + log_jacobian
        assert np.isfinite(expected)
        np.testing.assert_allclose(reparameterised, expected, rtol=1e-10)


def test_split_log_normal_is_a_normalised_density_its_draws_follow():
    """The density integrates to one with ``scale_below / (scale_below + scale_above)`` of
    its mass under the mode, is the log-normal's when the two scales agree, and its draws
    and its mean agree with it (within four standard errors of 100,000 draws)."""
    with jax.enable_x64(True):  # quadrature to 1e-6 needs a double-precision density
        loc, below, above = 0.3, 2.5, 1.0
        prior = SplitLogNormal(loc, below, above)

        def density_of_log(y):
            return float(np.exp(prior.log_prob(np.exp(y)) + y))

        mass_below = quad(density_of_log, loc - 12 * below, loc)[0]
        mass_above = quad(density_of_log, loc, loc + 12 * above)[0]
        expected_masses = [below / (below + above), above / (below + above)]
        np.testing.assert_allclose([mass_below, mass_above], expected_masses, atol=1e-5)
        np.testing.assert_allclose(
            SplitLogNormal(loc, 1.5, 1.5).log_prob(np.array([0.1, 1.0, 7.0])),
            dist.LogNormal(loc, 1.5).log_prob(np.array([0.1, 1.0, 7.0])),
            rtol=1e-6,
        )

        draws = np.asarray(prior.sample(jax.random.key(0), (100_000,)), np.float64)
        for point in (loc - 3.0, loc - 0.5, loc, loc + 0.5, loc + 2.0):
            expected = quad(density_of_log, loc - 12 * below, point)[0]
            standard_error = np.sqrt(expected * (1 - expected) / draws.size)
            assert abs(np.mean(np.log(draws) < point) - expected) < 4 * standard_error
        assert abs(np.mean(draws) - float(prior.mean)) < 4 * np.std(draws) / np.sqrt(draws.size)
