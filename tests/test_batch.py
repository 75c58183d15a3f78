"""``mien batch`` on a local Ray: the same answers as recognition in-process, the documented Parquet schema,
a resume that does no work twice, clear errors, and Ray started and stopped cleanly."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


def _photos(demo_photos, dst, n: int = 18):
    """``n`` held-out demo photos plus an unreadable file and a photo without a face."""
    import cv2

    src = sorted(p for p in demo_photos[1].rglob("*") if p.is_file())[:n]
    for p in src:
        (dst / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst / p.parent.name / p.name)
    (dst / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    cv2.imwrite(str(dst / "wall.jpg"), np.full((240, 320, 3), 180, np.uint8))
    return src


def _ray_processes() -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "raylet" in cmd or "gcs_server" in cmd:
            found.append(cmd[:120])
    return found


@pytest.mark.slow
def test_batch_gives_recognize_answers_and_resume_does_nothing_twice(recognizer, enrolled, demo_photos, tmp_path,
                                                                     mien_home):
    pytest.importorskip("ray")
    import pyarrow.parquet as pq

    from mien.pipeline.batch.job import SUMMARY, run_batch
    from mien.pipeline.batch.rows import schema
    from mien.pipeline.images import load_image

    src = tmp_path / "photos"
    originals = _photos(demo_photos, src)
    out = tmp_path / "out"
    summary = run_batch(src, out, workers=1, batch_size=8, progress=False)
    assert _ray_processes() == []  # the local Ray is stopped with the job

    table = pq.read_table(out / "faces")
    assert table.schema.remove_metadata().equals(schema(), check_metadata=False)
    rows = table.to_pylist()
    by_file: dict[str, list] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    assert len(by_file) == len(originals) + 2
    for p in originals:
        got = sorted(by_file[str((src / p.parent.name / p.name).resolve())], key=lambda r: r["face_index"])
        expected = recognizer.recognize(load_image(p), p.name).faces
        assert [(r["face_index"], (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]), r["name"], r["emotion"])
                for r in got] == [(f.face_id, tuple(f.bbox), f.identity.name, f.emotion.label if f.emotion else None)
                                  for f in expected]
        assert all(r["status"] == "face" and len(r["sha256"]) == 64 and len(r["landmarks"]) == 10 for r in got)
        assert got[0]["embedder"].startswith("facenet-taniai-") and got[0]["detector"].startswith("mtcnn-openvino-")
        # the FER2013 model's 7 scores, and FER+'s contempt column left empty (issue 24)
        assert got[0]["emotion_labels"] == "fer2013" and got[0]["emotion_contempt"] is None
        assert {k: got[0][f"precision_{k}"] for k in ("detector", "embedder", "emotion")} == recognizer.precision
        assert got[0]["emotion_happy"] == pytest.approx(expected[0].emotion.scores["happy"], abs=1e-6)
    [broken] = by_file[str((src / "broken.jpg").resolve())]
    assert broken["status"] == "error" and "broken.jpg" in broken["reason"] and broken["face_index"] is None
    [wall] = by_file[str((src / "wall.jpg").resolve())]
    assert wall["status"] == "no_face" and wall["name"] is None
    saved = json.loads((out / SUMMARY).read_text())
    assert saved["images_done_now"] == summary.images_done_now == len(originals) + 2
    assert saved["images_failed"] == 1 and saved["images_without_face"] == 1
    assert saved["faces"] == sum(1 for r in rows if r["status"] == "face")

    # resumed through the command, as users run it: nothing done twice, and nothing but mien's own lines (Ray's
    # start-up and shutdown chatter and its error-level actor line stay out of a successful run)
    from test_cli import mien

    again = mien("batch", src, "--out", out, "--workers", "1", "--batch-size", "8", "--resume", home=mien_home)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert f"0 photos recognized now ({len(originals) + 2} already done)" in again.stdout
    assert pq.read_table(out / "faces").num_rows == len(rows)  # no duplicates
    assert _ray_processes() == []


def test_sources_folder_list_and_manifests(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mien.pipeline.batch.sources import BatchSourceError, read_source

    (tmp_path / "a").mkdir()
    for name in ("a/1.jpg", "a/2.png", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert read_source(tmp_path / "a") == [str((tmp_path / "a" / n).resolve()) for n in ("1.jpg", "2.png")]
    (tmp_path / "list.txt").write_text("# photos\na/1.jpg\n\n/abs/3.jpg\n")
    assert read_source(tmp_path / "list.txt") == [str(tmp_path.resolve() / "a/1.jpg"), "/abs/3.jpg"]
    (tmp_path / "m.csv").write_text("path,taken\na/2.png,2024\n")
    assert read_source(tmp_path / "m.csv") == [str(tmp_path.resolve() / "a/2.png")]
    pq.write_table(pa.table({"path": ["a/1.jpg"], "n": [1]}), tmp_path / "m.parquet")
    assert read_source(tmp_path / "m.parquet") == [str(tmp_path.resolve() / "a/1.jpg")]
    (tmp_path / "bad.csv").write_text("file\nx.jpg\n")
    with pytest.raises(BatchSourceError, match="'path' column"):
        read_source(tmp_path / "bad.csv")
    with pytest.raises(BatchSourceError, match="no such folder or file"):
        read_source(tmp_path / "missing")


def test_a_path_listed_again_is_done_once_and_odd_manifests_are_read_or_named(tmp_path):
    """Issue 26 item 11 and the low items: duplicates in a list, a spreadsheet's byte-order mark, a Parquet
    manifest without the column (one line naming the columns found, not the schema dump)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mien.pipeline.batch.sources import BatchSourceError, read_source

    (tmp_path / "list.txt").write_text("a.jpg\nb.jpg\na.jpg\n./a.jpg\nb.jpg\n")
    assert read_source(tmp_path / "list.txt") == [str(tmp_path.resolve() / n) for n in ("a.jpg", "b.jpg")]
    (tmp_path / "excel.csv").write_bytes("\ufeffpath\na.jpg\n".encode())
    assert read_source(tmp_path / "excel.csv") == [str(tmp_path.resolve() / "a.jpg")]
    pq.write_table(pa.table({"file": ["a.jpg"], "n": [1]}), tmp_path / "m.parquet")
    with pytest.raises(BatchSourceError, match=r"needs a 'path' column \(found: file, n\)\.$"):
        read_source(tmp_path / "m.parquet")


def test_a_fifo_or_device_in_a_path_list_is_an_error_row_not_a_hang(tmp_path):
    import os

    from mien.pipeline.batch.job import read_photos

    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "ok.jpg").write_bytes(b"\xff\xd8 some bytes")
    photos = read_photos([str(tmp_path / "pipe.jpg"), "/dev/zero", str(tmp_path / "ok.jpg")], set())
    errors = [p["error"] for p in photos]
    assert "pipe.jpg: not a regular file" in errors[0] and "/dev/zero: not a regular file" in errors[1]
    assert errors[2] == "" and photos[2]["data"] == b"\xff\xd8 some bytes" and len(photos[2]["sha256"]) == 64


def test_an_output_in_use_needs_resume_and_a_damaged_shard_is_redone(tmp_path, caplog):
    from mien.pipeline.batch.job import BatchJobError, done_keys, run_batch, write_shard
    from mien.pipeline.batch.rows import error_row, to_table

    faces = tmp_path / "out" / "faces"
    faces.mkdir(parents=True)
    good = write_shard(faces, to_table([error_row("/x/broken.jpg", "unreadable"),
                                        {**error_row("/x/ok.jpg", "pretend"), "sha256": "ab" * 32}]))
    assert [p.name for p in faces.iterdir()] == [good.name]  # renamed into place, no temp file left
    (faces / "killed.parquet").write_bytes(b"PAR1 truncated")
    (faces / f".{'0' * 32}.parquet.tmp").write_bytes(b"PAR1 half written")  # a kill during write_shard
    with pytest.raises(BatchJobError, match="--resume"):
        run_batch(tmp_path, tmp_path / "out")
    assert done_keys(faces) == {"path:/x/broken.jpg", "ab" * 32 + "|/x/ok.jpg"}
    assert not (faces / "killed.parquet").exists() and "unreadable shard" in caplog.text
    assert [p.name for p in faces.iterdir()] == [good.name]
