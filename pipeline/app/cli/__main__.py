"""`python -m pipeline.app.cli` is `mien`."""
import sys

from pipeline.app.cli import main

sys.exit(main())
