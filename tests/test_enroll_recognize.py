"""End to end on the real models and the real 5-person photos: enroll train/, recognize val/."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from conftest import copy_person

pytestmark = pytest.mark.slow
PEOPLE = ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]


def test_enrollment_reports_every_person(enrolled):
    assert [p.name for p in enrolled.persons] == PEOPLE
    assert enrolled.enrolled == PEOPLE
    assert sum(p.photos for p in enrolled.persons) == 93
    used = sum(p.used for p in enrolled.persons)
    assert used >= 88, [p.skipped for p in enrolled.persons]
    for p in enrolled.persons:
        assert p.used + len(p.skipped) == p.photos
        assert all(reason for _, reason in p.skipped)


def test_val_photos_are_all_recognized(recognizer, enrolled, demo_photos):
    val = demo_photos[1]
    paths = sorted(val.rglob("*.jpg"))
    assert len(paths) == 25
    correct = 0
    for record, _ in recognizer.recognize_paths(paths):
        truth = record.file.split("/")[-2]
        main = max(record.faces, key=lambda f: f.bbox[2] * f.bbox[3])
        correct += main.identity.name == truth
        # other faces in the photo (bystanders) are never given the enrolled person's name
        assert all(f.identity.name != truth for f in record.faces if f is not main)
    assert correct == 25


def test_record_json_shape(recognizer, enrolled, demo_photos):
    from pipeline.images import load_image

    path = next((demo_photos[1] / "madonna").iterdir())
    d = recognizer.recognize(load_image(path), name=str(path)).to_dict()
    assert set(d) == {"file", "width", "height", "faces"} and d["width"] > 0
    face = d["faces"][0]
    assert set(face) == {"face_id", "bbox", "detection_confidence", "landmarks", "identity", "emotion"}
    assert face["face_id"] == 1 and len(face["bbox"]) == 4 and all(isinstance(v, int) for v in face["bbox"])
    assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert face["identity"]["name"] == "madonna" and 0 < face["identity"]["confidence"] <= 1
    assert face["identity"]["distance"] < 1.0


def test_incremental_enrollment_embeds_only_the_new_photo(recognizer, enrolled, demo_photos, tmp_path):
    from pipeline.enroll import enroll_folder

    root = tmp_path / "people"
    shutil.copytree(demo_photos[0], root)
    new_photo = sorted((demo_photos[1] / "ben_afflek").iterdir())[0]
    shutil.copy(new_photo, root / "ben_afflek" / "new.jpg")
    report = enroll_folder(root, recognizer, classifier_file=tmp_path / "clf.joblib")
    assert report.embedded == 1 and report.cached == 93
    assert {p.name: p.used for p in report.persons}["ben_afflek"] == 1 + {p.name: p.used for p in enrolled.persons}["ben_afflek"]


def test_strangers_are_unknown_leave_one_person_out(recognizer, enrolled, demo_photos):
    from pipeline.evaluate import evaluate_identity

    result = evaluate_identity(*demo_photos, recognizer)
    assert result["top1_accuracy"] == 1.0
    lopo = result["leave_one_person_out"]
    assert lopo["stranger_rejection_rate"] >= 0.95
    assert lopo["false_reject_rate"] <= 0.04


def test_one_enrolled_person_with_a_unicode_name(recognizer, enrolled, demo_photos, tmp_path):
    from identity.classifier import IdentityClassifier
    from pipeline.enroll import enroll_folder
    from pipeline.images import load_image

    copy_person(demo_photos[0], tmp_path / "people", "mindy_kaling", new_name="Mindy Kaling (é)")
    clf_file = tmp_path / "one.joblib"
    report = enroll_folder(tmp_path / "people", recognizer, classifier_file=clf_file)
    assert report.enrolled == ["Mindy Kaling (é)"] and report.embedded == 0
    clf = IdentityClassifier.load(clf_file)
    names = {}
    for person in ("mindy_kaling", "madonna", "jerry_seinfeld"):
        for f in sorted((demo_photos[1] / person).iterdir()):
            img = load_image(f)
            faces = recognizer.detect(img)
            names.setdefault(person, []).append(clf.predict(recognizer.embed_faces(img, faces[:1]))[0].name)
    assert names["mindy_kaling"].count("Mindy Kaling (é)") >= 4
    assert set(names["madonna"] + names["jerry_seinfeld"]) == {"unknown"}


def test_bad_enrollment_folders_never_lose_the_saved_classifier(recognizer, enrolled, tmp_path):
    from pipeline.enroll import EnrollmentError, enroll_folder
    from pipeline.assets import classifier_path

    saved = classifier_path().read_bytes()
    with pytest.raises(EnrollmentError, match="no such folder"):
        enroll_folder(tmp_path / "missing", recognizer)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnrollmentError, match="no person folders"):
        enroll_folder(tmp_path / "empty", recognizer)
    bad = tmp_path / "bad" / "someone"
    bad.mkdir(parents=True)
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("not a photo")
    cv2.imwrite(str(bad / "noface.png"), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(EnrollmentError, match="no usable face.*previous classifier kept"):
        enroll_folder(tmp_path / "bad", recognizer)
    assert classifier_path().read_bytes() == saved


def test_a_person_without_usable_photos_is_reported(recognizer, enrolled, demo_photos, tmp_path):
    from pipeline.enroll import enroll_folder

    root = tmp_path / "people"
    copy_person(demo_photos[0], root, "madonna")
    (root / "ghost").mkdir()
    (root / "ghost" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    report = enroll_folder(root, recognizer, classifier_file=tmp_path / "c.joblib")
    ghost = next(p for p in report.persons if p.name == "ghost")
    assert ghost.used == 0 and "truncated JPEG" in ghost.skipped[0][1]
    assert report.enrolled == ["madonna"]


def test_no_face_huge_image_and_many_faces(recognizer, enrolled, demo_photos):
    from pipeline.images import load_image

    assert recognizer.recognize(np.full((300, 400, 3), 200, np.uint8)).faces == []
    photo = load_image(sorted((demo_photos[1] / "mindy_kaling").iterdir())[0])
    small = recognizer.recognize(photo).faces[0]
    big_img = cv2.resize(photo, None, fx=6000 / photo.shape[1], fy=6000 / photo.shape[1])
    big = recognizer.recognize(big_img).faces[0]
    scale = big_img.shape[1] / photo.shape[1]
    assert np.allclose(np.array(big.bbox) / scale, small.bbox, atol=0.06 * small.bbox[2])
    assert big.identity.name == "mindy_kaling"
    # a collage of three enrolled people: three faces, three names
    tiles = [load_image(sorted((demo_photos[1] / p).iterdir())[0]) for p in ("ben_afflek", "madonna", "mindy_kaling")]
    tiles = [cv2.resize(t, (300, int(300 * t.shape[0] / t.shape[1]))) for t in tiles]
    h = max(t.shape[0] for t in tiles)
    collage = np.hstack([cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in tiles])
    names = sorted(f.identity.name for f in recognizer.recognize(collage).faces)
    assert names == ["ben_afflek", "madonna", "mindy_kaling"]


def test_corrupt_embedding_cache_is_rebuilt_not_trusted(recognizer, enrolled, demo_photos, tmp_path, caplog):
    from pipeline.enroll import embed_folder

    cache = tmp_path / "cache.npz"
    cache.write_bytes(b"corrupt")
    root = tmp_path / "people"
    copy_person(demo_photos[0], root, "ben_afflek", limit=2)
    data = embed_folder(root, recognizer, cache_file=cache)
    assert data.report.embedded == 2 and len(data.labels) == 2
    assert embed_folder(root, recognizer, cache_file=cache).report.embedded == 0


def test_min_face_size_option(demo_photos, mien_home):
    """Larger --min-face-size keeps big faces and drops small ones (mtcnn 1.0 alone loses all faces above ~24 px)."""
    from pipeline.detection import build_detector
    from pipeline.images import load_image

    photo = load_image(sorted((demo_photos[1] / "mindy_kaling").iterdir())[0])
    face = build_detector("mtcnn").detect(photo)[0]
    side = min(face.bbox[2:])
    assert build_detector("mtcnn", min_face_size=max(21, side // 2)).detect(photo)[0].bbox == pytest.approx(face.bbox, abs=0.1 * side)
    assert build_detector("mtcnn", min_face_size=2 * max(face.bbox[2:])).detect(photo) == []


@pytest.mark.slow
def test_server_enrollment_runs_facenet_inside_the_model_lock(recognizer, enrolled, demo_photos, tmp_path,
                                                              monkeypatch):
    """API enrollment shares the server's models: every FaceNet call must hold the server's model lock."""
    import threading

    from identity.cache import EmbeddingCache
    from pipeline.app.server import _LockedModels
    from pipeline.enroll import cache_version, embed_photos

    lock, held = threading.Lock(), []
    real_embed = recognizer.embedder.embed

    def spy(batch):
        held.append(lock.locked())
        return real_embed(batch)

    monkeypatch.setattr(recognizer.embedder, "embed", spy)
    photos = [(p.name, p.read_bytes()) for p in sorted((demo_photos[1] / "madonna").iterdir())[:2]]
    cache = EmbeddingCache(tmp_path / "cache.npz", cache_version(recognizer))
    result = embed_photos(photos, _LockedModels(recognizer, lock), cache)
    assert result.embedded == 2 and held == [True]  # one batched FaceNet call, under the lock
