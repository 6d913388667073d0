"""`python -m memdemo`: the command-line interface."""

import sys

from memdemo.cli import main

sys.exit(main())
