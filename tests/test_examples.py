"""The examples run, with small settings."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


# The first example runs in the default suite; the others compile several laws each (about
# a minute of compilation apiece on 2 cores), so they run with --runslow.
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))


@pytest.mark.parametrize(
    "script", [script if i == 0 else pytest.param(script, marks=pytest.mark.slow) for i, script in enumerate(SCRIPTS)]
)
def test_example_runs(script, tmp_path):
    path = os.path.join(EXAMPLES, script)
    process = subprocess.run(
        [sys.executable, path, "--num-warmup", "200", "--num-samples", "200", "--num-chains", "2", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    assert any(tmp_path.iterdir()), "the example saves a figure"
