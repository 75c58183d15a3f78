"""`python -m mien.pipeline.app.cli` is `mien`."""
import sys

from mien.pipeline.app.cli import main

sys.exit(main())
