"""One naming rule for people in the CLI's folders and the API: what one refuses, the other refuses too."""
from __future__ import annotations

import pytest

from pipeline.enroll import _person_dirs
from pipeline.names import PersonNameError, validate_person_name

BAD = ["unknown", "a..b", ".hidden", "esc\x1b[2J", "tab\there", "del\x7f", " padded", "x" * 65]


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
    assert all("not enrolled" in why[str(tmp_path / n)] for n in BAD)  # none is skipped silently
