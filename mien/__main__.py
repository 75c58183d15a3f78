"""`python -m mien` is the `mien` command."""
import sys

from mien.pipeline.app.cli import main

sys.exit(main())
