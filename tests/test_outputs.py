"""What mien prints and writes for people: tables safe for terminals, annotated file names that never clash."""
from __future__ import annotations

from mien.pipeline.app.outputs import StreamingTable, annotated_name, face_label, format_table, terminal_safe


def test_control_characters_never_reach_the_terminal():
    hostile = "evil\x1b[2J\x1b]0;pwned\x07name\n.jpg"
    for text in (format_table([[hostile, "1", "zo\x1bë", "", "", ""]]), StreamingTable().line([hostile, "1"])):
        assert "\x1b" not in text and "\x07" not in text and "\\x1b[2J" in text
        assert "\n" not in text.splitlines()[-1]
    assert terminal_safe("Zoë Núñez") == "Zoë Núñez"  # printable Unicode is kept as is


def test_annotated_names_are_distinct_and_short_enough():
    assert annotated_name("photos/p.jpg") == "photos__p.jpg"
    names = {annotated_name(f"photos/p.{ext}") for ext in ("jpg", "png", "jpeg", "webp")}
    assert len(names) == 4
    long_a, long_b = "d/" + "a" * 250 + ".jpg", "d/" + "a" * 250 + "b.jpg"
    assert len(annotated_name(long_a).encode()) <= 200
    assert annotated_name(long_a) != annotated_name(long_b)


def test_face_labels_name_the_face_and_say_why_a_stranger_is_one():
    from mien.identity.match import IdentityMatch
    from mien.pipeline.records import EmotionResult, FaceRecord

    known = FaceRecord(1, (0, 0, 9, 9), 0.99, {}, IdentityMatch("madonna", 0.934, 0.61, "madonna"),
                       EmotionResult("happy", 0.712, {}))
    stranger = FaceRecord(2, (0, 0, 9, 9), 0.9, {}, IdentityMatch("unknown", 0.89, 1.17, "ben_afflek"), None)
    assert face_label(known) == "#1 madonna 0.93 | happy 0.71"
    assert face_label(stranger) == "#2 unknown (closest ben_afflek 1.17)"
    assert stranger.identity.confidence is None  # never a confidence for a name mien did not give


def test_the_table_puts_the_answer_first_marks_near_ties_and_strangers_show_their_distance(tmp_path, monkeypatch):
    """Issue 21 item 10: the full path came first and wrapped every row; an unknown face showed a confidence; a
    near tie (happy 0.44, angry 0.39) was printed as a certain 'happy'."""
    from mien.identity.match import IdentityMatch
    from mien.pipeline.app.outputs import display_path, emotion_text, table_rows
    from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord

    monkeypatch.chdir(tmp_path)
    deep = str(tmp_path / ("folder" * 12) / "photo.jpg")
    scores = {"happy": 0.44, "angry": 0.39, "sad": 0.17}
    faces = [FaceRecord(1, (0, 0, 9, 9), 0.99, {}, IdentityMatch("ann", 0.91, 0.62, "ann"), EmotionResult("happy", 0.44, scores)),
             FaceRecord(2, (9, 9, 9, 9), 0.98, {}, IdentityMatch("unknown", 0.96, 1.31, "ann"),
                        EmotionResult("sad", 0.9, {"sad": 0.9, "happy": 0.1}))]
    rows = table_rows(ImageRecord(deep, 10, 10, faces))
    assert rows[0][:5] == ["ann", "0.91", "0.62", "happy 0.44 ~ angry 0.39", "1"]
    assert rows[1][:5] == ["unknown (closest: ann)", "", "1.31", "sad 0.90", "2"]
    assert rows[0][5].endswith("/photo.jpg") and len(rows[0][5]) <= 48 and rows[0][5].startswith("...")
    assert display_path(str(tmp_path / "a" / "b.jpg")) == "a/b.jpg"  # relative to the working folder
    assert emotion_text(EmotionResult("uncertain", 0.44, scores)) == "uncertain: happy 0.44 ~ angry 0.39"
    assert emotion_text(None) == "-"


def test_csv_cells_that_look_like_formulas_are_shown_as_text():
    """Issue 33 item 5: a person named `=2+5+HYPERLINK(...)` or a file `@x.jpg` became a formula cell in `--csv`;
    such text now starts with ' (OWASP), numbers (a box at x=-3) are left as numbers."""
    import csv
    import io

    from mien.identity.match import IdentityMatch
    from mien.pipeline.app.outputs import CSV_COLUMNS, csv_rows
    from mien.pipeline.records import FaceRecord, ImageRecord

    evil = '=2+5+HYPERLINK("http://x.example","click")'
    record = ImageRecord("@photo.jpg", 64, 64, [FaceRecord(1, (-3, 4, 20, 20), 0.99, {},
                                                           IdentityMatch(evil, 0.9, 0.5, evil), None)])
    [row] = csv_rows(record)
    assert row[0] == "'@photo.jpg" and row[2] == "'" + evil and row[CSV_COLUMNS.index("x")] == -3
    error = len(CSV_COLUMNS) - 1
    assert csv_rows(ImageRecord("\tx.jpg", error="-not an image"))[0][::error] == ["'\tx.jpg", "'-not an image"]
    out = io.StringIO()
    csv.writer(out).writerow(row)
    assert next(csv.reader(io.StringIO(out.getvalue())))[2] == "'" + evil  # quoted, quotes doubled


def test_the_pages_csv_cells_are_quoted_as_rfc_4180_and_never_formulas():
    """Issue 33 item 5: the page quoted cells with JSON.stringify (\\" is not CSV: a file name could leave its cell)
    and wrote formulas as they were; its csvCell now doubles quotes and prefixes formula-like text."""
    import csv
    import io
    import json
    import re
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("node") is None:
        import pytest

        pytest.skip("node is not installed")
    page = (Path(__file__).resolve().parents[1] / "pipeline" / "app" / "web" / "index.html").read_text()
    function = re.search(r"function csvCell\(value\) \{.*?\n\}", page, re.S).group(0)
    cells = ['a "quoted", name\n', "=1+1", "-3", "+", "@sum", 12, "plain"]
    script = function + f"\nconsole.log({json.dumps(cells)}.map(csvCell).join(','));"
    line = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=30).stdout
    assert next(csv.reader(io.StringIO(line))) == ['a "quoted", name\n', "'=1+1", "-3", "'+", "'@sum", "12", "plain"]


def test_the_streamed_table_keeps_its_columns_for_strangers_and_near_ties():
    """Widths come from the enrolled names and the emotion labels: ``unknown (closest: NAME)`` and a near tie of
    the two longest labels still leave the face and file columns where the header puts them."""
    from mien.identity.match import IdentityMatch
    from mien.pipeline.app.outputs import table_rows
    from mien.pipeline.records import EmotionResult, FaceRecord, ImageRecord

    people = ("madonna", "jerry_seinfeld")
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    tie = EmotionResult("surprise", 0.41, {"surprise": 0.41, "disgust": 0.39, "happy": 0.2})
    record = ImageRecord("p.jpg", 9, 9, [
        FaceRecord(1, (0, 0, 9, 9), 0.99, {}, IdentityMatch("madonna", 0.93, 0.61, "madonna"), tie),
        FaceRecord(2, (0, 0, 9, 9), 0.99, {}, IdentityMatch("unknown", None, 1.17, "jerry_seinfeld"), tie)])
    table = StreamingTable.for_answers(people, labels)
    lines = [table.header()] + [table.line(row) for row in table_rows(record)]
    assert "unknown (closest: jerry_seinfeld)" in lines[2] and "surprise 0.41 ~ disgust 0.39" in lines[1]
    assert len({line.index("p.jpg") for line in lines[1:]}) == 1
    assert lines[1].index("p.jpg") == lines[0].index("file")
    assert StreamingTable().widths[0] < table.widths[0]  # the fixed default would have shifted them
