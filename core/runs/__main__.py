"""``python -m core.runs``: the run store's command line (core.runs.cli)."""

import sys

from core.runs.cli import main

sys.exit(main())
