"""The README's command-line reference is the parser's own help, so the two cannot drift."""

import os
import sys

import pytest

from bayescale.cli import cli_reference

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="argparse words its help differently from Python 3.13")
def test_readme_holds_the_generated_cli_reference():
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    start, end = "<!-- cli-reference -->\n", "<!-- /cli-reference -->"
    section = text[text.index(start) + len(start) : text.index(end)]
    assert section == cli_reference(), (
        "README's command-line reference is out of date; regenerate it with "
        'python -c "from bayescale.cli import cli_reference; print(cli_reference())"'
    )


def test_every_command_is_in_the_reference():
    reference = cli_reference()
    for command in ("fit", "forecast", "compare", "extrapolate", "report", "laws"):
        assert f"### bayescale {command}\n" in reference
        assert f"usage: bayescale {command}" in reference
