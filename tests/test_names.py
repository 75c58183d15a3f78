"""One naming rule for people in the CLI's folders and the API: what one refuses, the other refuses too."""
from __future__ import annotations

import pytest

from mien.pipeline.enroll import _person_dirs
from mien.pipeline.names import PersonNameError, validate_person_name

BAD = ["unknown", "Unknown", "a..b", ".hidden", "esc\x1b[2J", "tab\there", "del\x7f", " padded", "x" * 65,
       "zero\u200bwidth", "rtl\u202egnp.exe"]


@pytest.mark.parametrize("name", BAD)
def test_the_api_rule_refuses(name):
    with pytest.raises(PersonNameError):
        if validate_person_name(name) != name:
            raise PersonNameError("stripped")


def test_enrollment_folders_follow_the_same_rule_and_say_why(tmp_path):
    for name in ["Zoë Núñez", "ben_afflek", *BAD]:
        (tmp_path / name).mkdir()
    (tmp_path / "loose.jpg").write_bytes(b"x")
    persons, ignored = _person_dirs(tmp_path)
    assert [p.name for p in persons] == ["Zoë Núñez", "ben_afflek"]
    why = dict(ignored)
    assert why[str(tmp_path / "loose.jpg")] == "photos must be inside a person folder"
    assert "what mien calls strangers" in why[str(tmp_path / "unknown")]
    assert "invisible or direction-changing characters (U+202E)" in why[str(tmp_path / "rtl\u202egnp.exe")]
    assert all("not enrolled" in why[str(tmp_path / n)] for n in BAD)  # none is skipped silently


def test_names_are_normalised_to_one_unicode_form():
    decomposed = "Zoe\u0308"  # how macOS spells a folder named Zoë
    assert validate_person_name(decomposed) == "Zo\u00eb"


def test_c1_control_characters_are_not_names():
    """U+009B is a one-character terminal CSI: a name holding it could drive a terminal printing --json."""
    import pytest

    from mien.pipeline.names import PersonNameError, validate_person_name

    for bad in ("ann\u009b31m", "b\u0085ob", "\u0080x"):
        with pytest.raises(PersonNameError):
            validate_person_name(bad)
    assert validate_person_name("Zoë") == "Zoë"
