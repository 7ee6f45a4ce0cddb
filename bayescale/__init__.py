"""bayescale: Bayesian scaling laws with NumPyro and NUTS.

Fit a law to a table of training runs, forecast the loss at a compute budget with the
compute-optimal split, all as posteriors::

    import jax
    import bayescale as bs

    data = bs.load_example("chinchilla")
    result = bs.fit("chinchilla", data, key=jax.random.key(0), likelihood="laplace")
    prediction = bs.forecast(result, compute=5.76e23, key=jax.random.key(1))

The laws live in :mod:`bayescale.models`; this package is the engine and never imports a
particular law.
"""

from importlib import metadata

from bayescale.checks import PredictiveCheck, check, posterior_predictive
from bayescale.compare import Comparison, compare
from bayescale.config import LARGE_BATCH, SamplerConfig, enable_compilation_cache
from bayescale.data import ScalingData, as_data, read_table
from bayescale.datasets import load_example
from bayescale.diagnostics import Diagnostics
from bayescale.errors import (
    BayescaleError,
    ConvergenceWarning,
    DataError,
    DownsampledLogWarning,
    IdentifiabilityWarning,
    UnknownLawError,
    UnreliableLOOWarning,
)
from bayescale.extrapolate import Extrapolation, extrapolate
from bayescale.forecast import Forecast, forecast, forecast_downstream
from bayescale.inference import Fit, fit
from bayescale.law import LIKELIHOODS, Law, build_model
from bayescale.logs import read_tensorboard, read_wandb
from bayescale.plots import (
    plot_exponents,
    plot_extrapolation,
    plot_frontier,
    plot_loo_pit,
    plot_ppc,
    plot_residuals,
)
from bayescale.questions import MetricJump, Trend, metric_explains_jump, trend
from bayescale.report import write_report
from bayescale.store import load_extrapolation, load_fit, load_forecast, load_saved, save_fit, save_forecast

__version__ = metadata.version("bayescale")

__all__ = [
    "LIKELIHOODS",
    "BayescaleError",
    "Comparison",
    "ConvergenceWarning",
    "DataError",
    "Diagnostics",
    "DownsampledLogWarning",
    "Extrapolation",
    "Fit",
    "Forecast",
    "IdentifiabilityWarning",
    "Law",
    "MetricJump",
    "PredictiveCheck",
    "LARGE_BATCH",
    "SamplerConfig",
    "ScalingData",
    "Trend",
    "UnknownLawError",
    "UnreliableLOOWarning",
    "__version__",
    "as_data",
    "build_model",
    "check",
    "compare",
    "enable_compilation_cache",
    "extrapolate",
    "fit",
    "forecast",
    "forecast_downstream",
    "load_example",
    "load_extrapolation",
    "load_fit",
    "load_forecast",
    "load_saved",
    "metric_explains_jump",
    "plot_exponents",
    "plot_extrapolation",
    "plot_frontier",
    "plot_loo_pit",
    "plot_ppc",
    "plot_residuals",
    "posterior_predictive",
    "read_table",
    "read_tensorboard",
    "read_wandb",
    "save_fit",
    "save_forecast",
    "trend",
    "write_report",
]
