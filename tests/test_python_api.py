"""mien as a Python library (issue 35): mien.recognize / verify / embed / enroll / people / forget on real models and
the demo photos; "unknown" told one way (closest person and distance, no confidence) in records, the table, CSV, the
API and the CLI; API enrollment skips a bad file with its reason; the CLI's --json, --annotate FILE and "did you mean"."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mien
from conftest import home_copy

REPO = Path(__file__).resolve().parents[1]


def photo(demo_photos, person: str, i: int = 0, split: int = 1) -> Path:
    return sorted((demo_photos[split] / person).iterdir())[i]


@pytest.fixture
def default_is(monkeypatch):
    """Point the module functions at a given Recognizer (the session's: its models load once for all tests)."""
    import mien.api

    return lambda rec: monkeypatch.setattr(mien.api, "_default", rec)


@pytest.fixture
def own_gallery(recognizer, enrolled, mien_home, tmp_path, monkeypatch, default_is):
    """The session's models over an empty gallery in a private MIEN_HOME, as the default Recognizer."""
    from mien.pipeline.gallery import open_default_gallery

    home = tmp_path / "home"
    home.mkdir()
    for shared in ("weights", "cache", "downloads"):  # the session's weights and converted models, not its people
        if (mien_home / shared).exists():
            (home / shared).symlink_to(mien_home / shared)
    monkeypatch.setenv("MIEN_HOME", str(home))
    view = recognizer.with_options()
    view.gallery, view.matcher = open_default_gallery(home), None
    default_is(view)
    yield view
    view.gallery.close()


def mien_cli(*args, home: Path, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIEN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "mien", *map(str, args)], capture_output=True, text=True, env=env,
                          stdin=stdin, timeout=600)


# ---- import, names, inputs ------------------------------------------------------------------------------------
def test_import_mien_is_instant_and_offers_the_functions():
    code = ("import json, sys, time; t = time.perf_counter(); import mien; dt = time.perf_counter() - t; "
            "heavy = sorted({'tensorflow', 'openvino', 'sklearn', 'cv2', 'numpy'} & set(sys.modules)); "
            "print(json.dumps([dt, heavy, dir(mien)]))")
    dt, heavy, names = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                 check=True).stdout)
    assert dt < 0.3 and heavy == [], (dt, heavy)
    assert {"recognize", "verify", "enroll", "Verification"} <= set(names) and "import_module" not in names
    assert {"recognize", "verify", "embed", "enroll", "people", "forget", "rename", "remove_photo", "Recognizer",
            "MienError", "NoFaceError", "Verification"} <= set(mien.__all__)
    assert mien.recognize.__module__ == "mien.api" and mien.Options().distance_threshold is None


def test_every_form_of_a_photo_gives_the_same_answer(recognizer, enrolled, demo_photos, default_is):
    import cv2
    from PIL import Image

    default_is(recognizer)
    path = photo(demo_photos, "madonna")
    forms = {"path": path, "str": str(path), "bytes": path.read_bytes(), "pil": Image.open(path),
             "rgb": mien.load_image(path)}
    answers = {k: [(f.identity.name, f.identity.distance) for f in mien.recognize(v).faces] for k, v in forms.items()}
    answers["bgr"] = [(f.identity.name, f.identity.distance)
                      for f in mien.recognize(cv2.imread(str(path)), channels="bgr").faces]
    assert answers["path"][0][0] == "madonna"
    for form, got in answers.items():  # PIL's JPEG decoder may differ from OpenCV's by a rounding
        assert [n for n, _ in got] == [n for n, _ in answers["path"]], form
        assert np.allclose([d for _, d in got], [d for _, d in answers["path"]], atol=0.02), form
    assert answers["bytes"] == answers["rgb"] == answers["bgr"] == answers["path"]  # the same decoded pixels
    assert mien.recognize(path).file == str(path)


def test_bad_input_raises_a_mien_error_naming_the_problem(recognizer, default_is):
    default_is(recognizer)
    cases = [(b"not an image at all", "not a readable image"), (np.zeros((8, 8, 3), np.float32), "must be uint8"),
             (np.zeros((8, 8, 2), np.uint8), "HxW"), (object(), "not an image; give a path"),
             ("/no/such/photo.jpg", "no such file")]
    for bad, words in cases:
        with pytest.raises(mien.MienError, match=re.escape(words)):
            mien.recognize(bad)
    with pytest.raises(mien.MienError, match="channels='BGR'"):
        mien.recognize(np.zeros((8, 8, 3), np.uint8), channels="BGR")
    with pytest.raises(mien.MienError, match="candidates=-1"):
        mien.recognize(np.zeros((8, 8, 3), np.uint8), candidates=-1)


# ---- verify and embed ---------------------------------------------------------------------------------------
def test_verify_says_same_distance_threshold_and_agrees_with_the_cli(recognizer, enrolled, demo_photos, mien_home,
                                                                        default_is):
    from mien.identity.classifier import SAME_PERSON_DISTANCE

    default_is(recognizer)
    ben = [photo(demo_photos, "ben_afflek", i) for i in (0, 1)]
    same = mien.verify(ben[0], ben[1].read_bytes())
    assert same.same and same.distance <= same.threshold == SAME_PERSON_DISTANCE
    other = mien.verify(ben[0], photo(demo_photos, "madonna"))
    assert not other.same and other.distance > SAME_PERSON_DISTANCE
    assert other.to_dict() == {"same": False, "distance": round(other.distance, 4), "threshold": SAME_PERSON_DISTANCE,
                               "detected_on_retry": [False, False]}
    assert mien.verify(ben[0], ben[1], threshold=0.1).same is False
    with pytest.raises(mien.NoFaceError, match="no face found"):
        mien.verify(ben[0], np.full((200, 200, 3), 128, np.uint8))
    r = mien_cli("verify", ben[0], ben[1], "--json", home=mien_home)  # --json without a value: standard output
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["same"] is True and doc["threshold"] == SAME_PERSON_DISTANCE
    assert doc["distance"] == pytest.approx(same.distance, abs=1e-3)


def test_embed_gives_each_face_largest_first(recognizer, demo_photos, default_is):
    default_is(recognizer)
    faces = mien.embed(photo(demo_photos, "elton_john"))
    assert len(faces) >= 1 and faces[0].embedding.shape == (128,)
    assert np.linalg.norm(faces[0].embedding) == pytest.approx(1.0, abs=1e-3)
    assert [f.bbox[2] * f.bbox[3] for f in faces] == sorted((f.bbox[2] * f.bbox[3] for f in faces), reverse=True)
    assert set(faces[0].to_dict()) == {"bbox", "detection_confidence", "subject", "detected_on_retry", "embedding"}
    assert sum(f.subject for f in faces) == 1 and not any(f.detected_on_retry for f in faces)
    assert mien.embed(np.full((120, 120), 200, np.uint8)) == []


# ---- the gallery from Python --------------------------------------------------------------------------------
def test_enroll_people_rename_remove_and_forget_round_trip(own_gallery, demo_photos):
    from PIL import Image

    ann = [photo(demo_photos, "mindy_kaling", i, split=0) for i in range(4)]
    update = mien.enroll("ann", [ann[0], ann[1].read_bytes(), Image.open(ann[2]), b"\xff\xd8 broken",
                                 np.full((100, 100, 3), 90, np.uint8)])
    assert (update.faces, update.added) == (3, 3)
    assert [(p.used, p.reason) for p in update.photos][3:] == [(False, "truncated JPEG (no end-of-image marker); "
                                                                       "re-export or re-download the photo."),
                                                               (False, "no face found")]
    assert update.photos[0].file == str(ann[0]) and update.to_dict()["photos"][4]["reason"] == "no face found"
    assert mien.people() == {"ann": 3}
    record = mien.recognize(photo(demo_photos, "mindy_kaling"))
    face = record.faces[0]
    assert face.identity.name == "ann" and face.identity.confidence is not None
    from mien.pipeline.history import ResultsDB, default_db_path

    with ResultsDB(default_db_path()) as db:  # what `mien recognize --db` or a server stored of her
        db.add(record, image_sha256=None, thresholds={}, models={}, source="cli")

    with pytest.raises(mien.SimilarNameError, match="did you mean 'ann'"):
        mien.enroll("Anne", ann[3])
    assert mien.enroll("Anne", ann[3], new=True).faces == 1
    mien.rename("Anne", "bob")
    [h] = [f["photo_hash"] for f in own_gallery.gallery.person("bob").faces]
    assert mien.remove_photo("bob", h[:10]) == 1
    assert mien.people() == {"ann": 3, "bob": 0}  # a person outlives their last photo, as in the gallery
    assert mien.forget("ann") == 3 and mien.forget("bob") == 0 and mien.people() == {}
    with ResultsDB(default_db_path()) as db:  # erasure reaches the history, as `mien people forget` does
        [row] = db.query()
        assert db.query(person="ann") == [] and row["faces"][0]["identity"]["name"] == "unknown"
        assert "mindy" not in json.dumps(row) and row["image_sha256"] is None
    with pytest.raises(mien.UnknownPersonError, match="'ann' is not enrolled"):
        mien.forget("ann")
    assert mien.recognize(ann[0]).faces[0].identity is None  # nobody left to name faces from


# ---- "unknown", told one way ---------------------------------------------------------------------------------
def test_a_stranger_has_the_closest_person_and_distance_and_no_confidence(recognizer, enrolled, demo_photos):
    import csv
    import io

    from mien.pipeline.app.outputs import CSV_COLUMNS, csv_rows, face_label, table_rows

    strict = recognizer.with_options(distance_threshold=0.3, candidates=3)  # everybody is a stranger to it
    record = strict.recognize(photo(demo_photos, "jerry_seinfeld"))
    ident = record.faces[0].identity
    assert ident.name == "unknown" and ident.confidence is None and ident.closest == "jerry_seinfeld"
    assert ident.distance > 0.3 and [c.name for c in ident.candidates][0] == "jerry_seinfeld"
    assert [c.distance for c in ident.candidates] == sorted(c.distance for c in ident.candidates)
    assert len(ident.candidates) == 3 and ident.candidates[0].distance == pytest.approx(ident.distance)
    doc = record.to_dict()["faces"][0]["identity"]
    assert doc["confidence"] is None and doc["closest"] == "jerry_seinfeld" and len(doc["candidates"]) == 3
    row = table_rows(record)[0]
    assert row[:3] == ["unknown (closest: jerry_seinfeld)", "", f"{ident.distance:.2f}"]
    assert face_label(record.faces[0]).startswith("#1 unknown (closest jerry_seinfeld ")
    [line] = list(csv.DictReader(io.StringIO(",".join(CSV_COLUMNS) + "\n" + ",".join(map(str, csv_rows(record)[0])))))
    assert line["who"] == "unknown" and line["confidence"] == "" and line["closest"] == "jerry_seinfeld"
    named = recognizer.recognize(photo(demo_photos, "jerry_seinfeld")).faces[0].identity
    assert named.name == named.closest == "jerry_seinfeld" and 0 < named.confidence <= 1 and not named.candidates


@pytest.mark.parametrize("kind", ["svm", "knn"])
def test_both_matchers_give_a_strangers_closest_person_and_candidates(tmp_path, kind):
    from mien.identity.gallery import NewFace, open_gallery
    from mien.identity.matchers import build_matcher

    rng = np.random.default_rng(7)
    centres = rng.normal(size=(3, 128))
    g = open_gallery(str(tmp_path / "g.sqlite3"))
    for p, c in enumerate(centres):
        vecs = c + rng.normal(size=(4, 128)) * 0.05
        vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
        g.add_faces(f"p{p}", [NewFace(f"p{p}i{i}", v, "x") for i, v in enumerate(vecs)], "m")
    m = build_matcher(g.snapshot(), "m", kind)
    probe = centres[1] + 0.6 * centres[2]
    probe = (probe / np.linalg.norm(probe))[None].astype(np.float32)
    from mien.identity.classifier import MatchThresholds

    [far] = m.predict(probe, MatchThresholds(distance=0.3), candidates=2)  # ~0.53 from p1, ~0.99 from p2
    assert far.name == "unknown" and far.confidence is None and far.closest == "p1"
    assert [c.name for c in far.candidates] == ["p1", "p2"] and far.candidates[0].distance == pytest.approx(far.distance)
    near = centres[0] / np.linalg.norm(centres[0])
    [known] = m.predict(near[None].astype(np.float32))
    assert known.name == known.closest == "p0" and known.confidence is not None and known.candidates == ()
    g.close()


def test_api_enrollment_skips_a_bad_file_with_its_reason_and_answers_strangers_plainly(recognizer, enrolled,
                                                                                       mien_home, demo_photos, tmp_path):
    from test_server import AUTH, jpeg, make_client

    client = make_client(recognizer, home_copy(mien_home, tmp_path / "home"))
    good = [jpeg(photo(demo_photos, "madonna", i, split=0)) for i in (0, 1)]
    files = [("files", good[0]), ("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg")),
             ("files", ("notes.txt", b"hello", "text/plain")), ("files", good[1])]
    r = client.post("/people/Zed/photos", files=files, headers=AUTH)
    assert r.status_code == 200, r.text
    photos = r.json()["photos"]
    assert [p["used"] for p in photos] == [True, False, False, True] and r.json()["enrolled_photos"] == 2
    assert photos[1]["file"] == "broken.jpg" and "truncated JPEG" in photos[1]["reason"]
    assert photos[2]["file"] == "notes.txt" and "content type 'text/plain' is not an image" in photos[2]["reason"]
    r = client.post("/people/Nobody/photos", files=[("files", ("notes.txt", b"hello", "text/plain"))], headers=AUTH)
    assert r.status_code == 422 and "no usable face" in r.text

    r = client.post("/recognize", files={"file": jpeg(photo(demo_photos, "elton_john"))},
                    data={"distance_threshold": "0.3", "candidates": "2"})
    ident = r.json()["faces"][0]["identity"]
    assert ident["name"] == "unknown" and ident["confidence"] is None and ident["closest"] == "elton_john"
    assert [c["name"] for c in ident["candidates"]][0] == "elton_john" and len(ident["candidates"]) == 2


# ---- the CLI's edges ------------------------------------------------------------------------------------------
def test_cli_embed_prints_json_annotate_writes_one_file_and_a_typo_name_is_asked_about(enrolled, mien_home,
                                                                                         demo_photos, tmp_path):
    one = photo(demo_photos, "madonna")
    r = mien_cli("embed", one, home=mien_home)  # no --out: JSON on standard output
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["faces"][0]["file"] == str(one) and len(doc["faces"][0]["embedding"]) == 128

    target = tmp_path / "one.jpg"
    r = mien_cli("recognize", one, "--annotate", target, "--no-emotion", home=mien_home)
    assert r.returncode == 0, r.stderr
    assert target.is_file() and target.read_bytes()[:2] == b"\xff\xd8"
    r = mien_cli("recognize", one, photo(demo_photos, "madonna", 1), "--annotate", target, home=mien_home)
    assert r.returncode == 2 and "a file takes one annotated photo" in r.stderr

    r = mien_cli("people", "add", "Madona", one, home=mien_home)  # asked before any model loads
    assert r.returncode == 2 and "did you mean 'madonna'" in r.stderr and "--new" in r.stderr
    r = mien_cli("people", "list", "--json", home=mien_home)
    assert r.returncode == 0 and "Madona" not in r.stdout and json.loads(r.stdout)["people"]
    r = mien_cli("history", "--json", "-", "--db", tmp_path / "none.db", home=mien_home)
    assert "unrecognized arguments" not in r.stderr
    r = mien_cli("verify", "--json", one, one, home=mien_home)  # a photo is never taken as the file to write
    assert r.returncode == 2 and "is a photo, not a JSON file to write" in r.stderr


# ---- the documented examples run ------------------------------------------------------------------------------
def python_examples(page: Path, start: str, end: str | None = None) -> list[str]:
    """The ```python blocks of a page between the line holding ``start`` and the next holding ``end``."""
    text = page.read_text(encoding="utf-8")
    body = text[text.index(start):]
    body = body[:body.index(end)] if end else body
    return re.findall(r"^```python\n(.*?)^```", body, flags=re.M | re.S)


def test_every_documented_python_example_runs(own_gallery, demo_photos, tmp_path, monkeypatch, capsys):
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    for name, source in (("ann1.jpg", photo(demo_photos, "mindy_kaling", 0, 0)),
                         ("ann2.jpg", photo(demo_photos, "mindy_kaling", 1, 0)),
                         ("group.jpg", photo(demo_photos, "mindy_kaling"))):
        shutil.copy(source, work / name)
    monkeypatch.chdir(work)
    examples = python_examples(REPO / "README.md", "**From Python**", "**Manage people**") + \
        python_examples(REPO / "docs" / "api.md", "## The Python API")
    assert len(examples) == 3
    for code in examples:
        exec(compile(code, "<docs example>", "exec"), {})
    out = capsys.readouterr().out
    assert "{'ann': 2}" in out and "(128,)" in out
    assert mien.people() == {}  # the api.md example forgets whom it enrolled
