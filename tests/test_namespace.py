"""The public namespace, pinned; and the packaging of the law catalogue."""

import importlib.util
import os
import subprocess
import sys

import bayescale.models

import bayescale


def test_public_names_are_pinned():
    assert sorted(bayescale.__all__) == sorted(
        [
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
            "LIKELIHOODS",
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
    )
    for name in bayescale.__all__:
        assert hasattr(bayescale, name)


def test_catalogue_ships_inside_the_package_and_no_top_level_models(tmp_path):
    assert os.path.basename(os.path.dirname(bayescale.models.__file__)) == "models"
    code = "import importlib.util, bayescale.models; print(importlib.util.find_spec('models'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_engine_never_imports_a_law():
    engine = os.path.dirname(bayescale.__file__)
    for root, _, files in os.walk(engine):
        if os.path.basename(root) == "models":
            continue
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(root, name)) as handle:
                    source = handle.read()
                assert "bayescale.models." not in source, f"{name} imports a particular law"
    assert importlib.util.find_spec("bayescale.models.chinchilla") is not None
