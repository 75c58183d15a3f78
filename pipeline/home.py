"""Where mien keeps what it writes at run time (fetched weights, caches, the classifier)."""
from __future__ import annotations

from pathlib import Path

# The folder holding identity/, emotion/, pipeline/ and models/: the checkout, or the installed mien package.
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def running_from_checkout() -> bool:
    """True when the code runs from a source checkout (``pip install -e .`` or the repo itself)."""
    return (SOURCE_ROOT / "setup.cfg").is_file() and (SOURCE_ROOT / "pipeline").is_dir()


def mien_home() -> Path:
    """``$MIEN_HOME`` if set, else ``models/`` of the checkout, else ``~/.cache/mien``; created on demand."""
    from mien.pipeline import settings

    home = settings.home()
    if home is None:
        home = SOURCE_ROOT / "models" if running_from_checkout() else Path.home() / ".cache" / "mien"
    home.mkdir(parents=True, exist_ok=True)
    return home
