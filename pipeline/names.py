"""One naming rule for people, everywhere (CLI folders, API, web page): a name is also a folder name, and
``unknown`` is reserved for strangers."""
from __future__ import annotations

import re
import unicodedata

from mien.identity.match import UNKNOWN
from mien.pipeline.errors import UsageError

MAX_NAME_LENGTH = 64
_NAME_OK = re.compile(r"^[^\x00-\x1f\x7f-\x9f/\\:*?\"<>|]+$")  # C0, DEL and C1 (U+009B is a terminal CSI)


class PersonNameError(UsageError):
    """A person name that cannot be a folder name (path separators, ``..``, control characters, too long)."""


def validate_person_name(name: str) -> str:
    """Return ``name`` stripped if it is usable as a person (and folder) name, else raise PersonNameError."""
    stripped = unicodedata.normalize("NFC", name.strip())
    if not stripped or len(stripped) > MAX_NAME_LENGTH:
        raise PersonNameError(f"person name must be 1 to {MAX_NAME_LENGTH} characters.")
    if stripped in (".", "..") or ".." in stripped or stripped.startswith(".") or not _NAME_OK.match(stripped):
        raise PersonNameError(f"{name!r}: a person name may not contain path separators, '..', a leading dot, "
                              "control characters or any of : * ? \" < > |.")
    invisible = [c for c in stripped if unicodedata.category(c) in ("Cf", "Co", "Cs", "Cn", "Zl", "Zp")]
    if invisible:  # zero-width joiners, right-to-left overrides...: names that look like another person's
        raise PersonNameError(f"{name!r}: a person name may not contain invisible or direction-changing characters "
                              f"({', '.join(f'U+{ord(c):04X}' for c in invisible)}).")
    if "\ufffd" in stripped:  # what bytes that were not UTF-8 became (a URL's %FF, a mis-encoded folder name)
        raise PersonNameError(f"{name!r}: the name holds bytes that are not UTF-8 text (shown as U+FFFD); "
                              "send or save it as UTF-8.")
    if stripped.casefold() == UNKNOWN:
        raise PersonNameError("'unknown' is what mien calls strangers; choose another name.")
    return stripped
