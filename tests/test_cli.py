"""The `mien` command as users run it (subprocess), on the real models and photos."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def mien(*args: str, home=None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if home is not None:
        env["MIEN_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "pipeline.app.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_recognize_writes_json_and_annotations_and_reports_bad_files(enrolled, mien_home, demo_photos, tmp_path):
    val = demo_photos[1]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for person in ("ben_afflek", "madonna"):
        src = sorted((val / person).iterdir())[0]
        shutil.copy(src, inputs / f"{person}.jpg")
    (inputs / "broken.jpg").write_bytes(b"not an image")
    out_json, ann = tmp_path / "results.json", tmp_path / "annotated"
    r = mien("recognize", inputs, "--json", out_json, "--annotate", ann, home=mien_home)
    assert r.returncode == 1, r.stderr  # one unreadable input: non-zero, but the others are processed
    assert "broken.jpg: not a readable image" in r.stderr
    assert "Traceback" not in r.stderr
    doc = json.loads(out_json.read_text())
    assert doc["models"]["embedder"].startswith("facenet-taniai-")
    by_file = {os.path.basename(i["file"]): i for i in doc["images"]}
    assert by_file["ben_afflek.jpg"]["faces"][0]["identity"]["name"] == "ben_afflek"
    assert by_file["madonna.jpg"]["faces"][0]["identity"]["name"] == "madonna"
    assert "error" in by_file["broken.jpg"]
    assert "ben_afflek" in r.stdout and "madonna" in r.stdout
    assert sorted(p.name for p in ann.iterdir()) == ["inputs__ben_afflek.jpg", "inputs__madonna.jpg"]  # <folder>__<stem>


def test_no_face_is_a_result_not_an_error(mien_home, tmp_path):
    import cv2
    import numpy as np

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 90, np.uint8))
    r = mien("recognize", blank, "--no-emotion", home=mien_home)
    assert r.returncode == 0, r.stderr
    assert "(no face)" in r.stdout


def test_enroll_errors_are_clear_and_fast(tmp_path):
    r = mien("enroll", tmp_path / "nobody", home=tmp_path / "home")
    assert r.returncode == 2
    assert "nobody: no such folder" in r.stderr and "Traceback" not in r.stderr


def test_missing_weights_message(tmp_path):
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "photo.png"), np.full((60, 60, 3), 128, np.uint8))
    r = mien("recognize", tmp_path, home=tmp_path / "empty_home")
    assert r.returncode == 2
    assert "mien models fetch" in r.stderr and "Traceback" not in r.stderr


def test_embed_and_verify(enrolled, mien_home, demo_photos, tmp_path):
    import numpy as np

    ben = sorted((demo_photos[1] / "ben_afflek").iterdir())
    out = tmp_path / "emb.npz"
    r = mien("embed", ben[0], ben[1], "--out", out, home=mien_home)
    assert r.returncode == 0, r.stderr
    data = np.load(out)
    assert data["embeddings"].shape[1] == 128 and len(data["files"]) >= 2
    assert str(data["model_version"]).startswith("facenet-taniai-")
    r = mien("verify", ben[0], ben[1], home=mien_home)
    assert r.returncode == 0, r.stderr
    assert "same person" in r.stdout and "(threshold 1.10)" in r.stdout
    r = mien("verify", ben[0], sorted((demo_photos[1] / "madonna").iterdir())[0], home=mien_home)
    assert r.returncode == 0 and "different people" in r.stdout, r.stderr
