"""``python -m bayescale``: the command-line interface."""

from bayescale.cli import main

raise SystemExit(main())
