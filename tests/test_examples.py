"""The examples run, with small settings."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


# The first example runs in the default suite, at its default settings: its sampler is then
# the one `bayescale fit --example chinchilla --likelihood laplace` compiled earlier in the
# suite (tests/test_cli.py), which it loads from the suite's compilation cache. The others
# compile several laws each (about a minute of compilation apiece on 2 cores), so they run
# with --runslow, with few draws.
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
FEW_DRAWS = ["--num-warmup", "200", "--num-samples", "200", "--num-chains", "2"]


@pytest.mark.parametrize(
    "script", [script if i == 0 else pytest.param(script, marks=pytest.mark.slow) for i, script in enumerate(SCRIPTS)]
)
def test_example_runs(script, tmp_path):
    path = os.path.join(EXAMPLES, script)
    settings = [] if script == SCRIPTS[0] else FEW_DRAWS
    process = subprocess.run(
        [sys.executable, path, *settings, "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    assert any(tmp_path.iterdir()), "the example saves a figure"
