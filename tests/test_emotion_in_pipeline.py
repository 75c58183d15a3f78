"""Emotion inside the product: every detected face gets an emotion; without a model, identity still works."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mien.emotion import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "emotion" / "emotion_resnet50.weights.h5"
FER = REPO.parent / "shared" / "data" / "fer2013.npz"
needs_model = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"no shipped emotion model at {SHIPPED}")


def test_emotion_crop_is_tight_gray_48_and_pads_at_edges():
    from mien.pipeline.detection import Face
    from mien.pipeline.faceprep import EmotionCrop

    img = np.zeros((100, 100, 3), np.uint8)
    img[20:60, 30:70] = 255  # the "face" fills its box
    marks = {"left_eye": (40.0, 32.0), "right_eye": (60.0, 32.0), "nose": (50, 42), "mouth_left": (42, 52),
             "mouth_right": (58, 52)}
    crop = EmotionCrop()(img, Face((30, 20, 40, 40), 0.99, marks))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop[4:-4, 4:-4].min() > 200  # tight: the box fills the crop
    edge = EmotionCrop()(img, Face((80, 85, 30, 30), 0.9, {}))  # box hangs over the corner: padded, not a crash
    assert edge.shape == (48, 48)
    tilted = {**marks, "right_eye": (60.0, 42.0)}  # eyes not level: rotated upright, still 48x48
    assert EmotionCrop()(img, Face((30, 20, 40, 40), 0.99, tilted)).shape == (48, 48)


def test_missing_or_corrupt_emotion_weights_leave_emotion_null(tmp_path, caplog):
    from mien.pipeline.models import load_emotion_model

    assert load_emotion_model(tmp_path / "none.weights.h5") is None
    assert "emotion weights not found" in caplog.text and "Identity still works" in caplog.text
    if SHIPPED.is_file():  # a corrupt copy next to the real model.json is refused by checksum
        shutil.copy(SHIPPED.parent / "model.json", tmp_path / "model.json")
        (tmp_path / "emotion_resnet50.weights.h5").write_bytes(b"\x89HDF" + b"\0" * 100)
        assert load_emotion_model(tmp_path / "emotion_resnet50.weights.h5") is None
        assert "does not match" in caplog.text


@pytest.mark.slow
def test_identity_works_without_an_emotion_model(enrolled, recognizer, demo_photos, monkeypatch, tmp_path):
    from mien.pipeline import Recognizer
    from mien.pipeline.images import load_image

    monkeypatch.setenv("MIEN_EMOTION_WEIGHTS", str(tmp_path / "missing.weights.h5"))
    rec = Recognizer(detector=recognizer.detector, embedder=recognizer.embedder)
    assert rec.emotion_model is None
    face = rec.recognize(load_image(sorted((demo_photos[1] / "madonna").iterdir())[0])).faces[0]
    assert face.identity.name == "madonna" and face.emotion is None


@pytest.mark.slow
@needs_model
def test_every_face_of_the_demo_photos_has_an_emotion(recognizer, enrolled, demo_photos):
    from mien.pipeline.images import load_image

    assert recognizer.emotion_model is not None
    paths = sorted(demo_photos[1].rglob("*.jpg"))
    records = recognizer.recognize_batch([load_image(p) for p in paths], [str(p) for p in paths])
    faces = [f for r in records for f in r.faces]
    assert len(faces) >= 25
    for f in faces:
        assert f.emotion.label in EMOTIONS and set(f.emotion.scores) == set(EMOTIONS)
        assert abs(sum(f.emotion.scores.values()) - 1) < 1e-3
        assert f.emotion.confidence == max(f.emotion.scores.values())
    # celebrity photos are mostly posed smiles: the model must see at least some happiness
    assert sum(f.emotion.label == "happy" for f in faces) >= 5


@pytest.mark.slow
@needs_model
def test_emotion_threshold_marks_uncertain_but_keeps_scores(recognizer, demo_photos):
    from mien.pipeline.images import load_image

    img = load_image(sorted((demo_photos[1] / "mindy_kaling").iterdir())[0])
    saved = recognizer.options.emotion_threshold
    try:
        recognizer.options.emotion_threshold = 1.01
        e = recognizer.recognize(img).faces[0].emotion
    finally:
        recognizer.options.emotion_threshold = saved
    assert e.label == "uncertain" and len(e.scores) == 7


@pytest.mark.slow
@needs_model
@pytest.mark.skipif(not FER.is_file(), reason=f"FER2013 not available at {FER}")
def test_cropped_mode_on_fer2013_faces(recognizer, tmp_path):
    """--cropped: each image is one face (no detection); FER2013 test faces written as PNGs get exactly the
    probabilities that `mien evaluate emotion` computes for them, so the product's accuracy is the evaluated one."""
    from mien.emotion.training.data import load_npz
    from mien.pipeline.models import load_emotion_model

    x, y = load_npz(FER).split("PrivateTest")
    idx = np.random.default_rng(7).choice(len(y), 60, replace=False)
    paths = []
    for i in idx:
        p = tmp_path / f"{i}_{EMOTIONS[y[i]]}.png"
        cv2.imwrite(str(p), x[i])
        paths.append(p)
    records = [r for r, _ in recognizer.recognize_paths(paths, cropped=True)]
    assert all(len(r.faces) == 1 and r.faces[0].bbox == (0, 0, 48, 48) for r in records)
    predicted = [r.faces[0].emotion.label for r in records]
    truth = [EMOTIONS[y[i]] for i in idx]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth)])
    assert accuracy > 0.4, accuracy  # chance is ~0.25 (always "happy"); the shipped model scores far above
    evaluated = load_emotion_model(required=True).predict(x[idx])  # `mien evaluate emotion`'s path
    product = np.array([[r.faces[0].emotion.scores[label] for label in EMOTIONS] for r in records])
    np.testing.assert_allclose(product, evaluated, atol=1e-4)


@pytest.mark.slow
def test_tiny_images_and_extreme_aspect_ratios_do_not_crash(recognizer, demo_photos):
    from mien.pipeline.images import load_image

    for shape in [(8, 8, 3), (30, 3000, 3), (3000, 30, 3)]:
        assert recognizer.recognize(np.full(shape, 100, np.uint8)).faces == []
    photo = load_image(sorted((demo_photos[1] / "madonna").iterdir())[0])
    tiny = cv2.resize(photo, None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)  # face well under 20 px
    for face in recognizer.recognize(tiny).faces:
        assert min(face.bbox[2:]) >= 1
