"""Test-time views: model.json's ``tta`` parses strictly, and the product averages exactly the views that
benchmarks/emotion_tta.py measured (cv2 shifts with replicated edges, each mirrored)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mien.emotion.views import MIRROR, NONE, PRESETS, SHIFT3_FOUR_WAYS, TestTimeViews

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "emotion"
WEIGHTS = SHIPPED / "emotion_resnet50.weights.h5"


def test_model_json_values_round_trip_and_old_booleans_still_mean_mirror_or_nothing():
    assert TestTimeViews.from_meta(True) == MIRROR and TestTimeViews.from_meta(False) == NONE
    for views in PRESETS.values():
        assert TestTimeViews.from_meta(json.loads(json.dumps(views.to_meta()))) == views
    assert (NONE.passes, MIRROR.passes, SHIFT3_FOUR_WAYS.passes) == (1, 2, 10)
    assert len({v.cache_name for v in PRESETS.values()}) == len(PRESETS)  # converted graphs never mix


@pytest.mark.parametrize("value, message", [
    ("yes", "tta must be"), ({"shifts": []}, "at least one shift"), ({"shifts": [[0, 0], [0, 0]]}, "repeated"),
    ({"shifts": [[20, 0]]}, "over 8 pixels"), ({"shifts": [[1]]}, "pixel pairs"), ({"flip": True}, "tta must be"),
])
def test_bad_views_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        TestTimeViews.from_meta(value)


def test_a_model_json_with_bad_views_names_the_file(tmp_path):
    if not WEIGHTS.is_file():
        pytest.skip(f"no shipped emotion model ({WEIGHTS} absent)")
    from mien.emotion.classifier import EmotionClassifier, EmotionModelError

    shutil.copy(WEIGHTS, tmp_path / WEIGHTS.name)
    meta = json.loads((SHIPPED / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "tta": {"shifts": [[40, 0]]}}))
    with pytest.raises(EmotionModelError, match=r"model\.json.*over 8 pixels"):
        EmotionClassifier.load(tmp_path / WEIGHTS.name)


@pytest.fixture(scope="module")
def demo_faces(recognizer, demo_photos) -> np.ndarray:
    """The 48x48 emotion crops of every face in the held-out demo photos (real faces, no FER2013 needed)."""
    from mien.pipeline.images import load_image

    images = [load_image(p) for p in sorted(demo_photos[1].rglob("*.jpg"))]
    return np.stack([recognizer.emotion_crop(img, f) for img in images for f in recognizer.detect(img)])


def cv2_view(faces: np.ndarray, dx: int, dy: int, mirror: bool) -> np.ndarray:
    """The benchmark's view: an integer shift with replicated edges, then the mirror image."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    out = np.stack([cv2.warpAffine(f, m, (48, 48), borderMode=cv2.BORDER_REPLICATE) for f in faces])
    return out[:, :, ::-1] if mirror else out


@pytest.mark.slow
@pytest.mark.parametrize("views", [MIRROR, SHIFT3_FOUR_WAYS, TestTimeViews(shifts=((3, 0),), mirror=False)],
                         ids=["mirror", "mirror+shift3", "one shifted view"])
def test_the_classifier_averages_the_benchmarked_views(views, demo_faces):
    if not WEIGHTS.is_file():
        pytest.skip(f"no shipped emotion model ({WEIGHTS} absent)")
    import tensorflow as tf

    from mien.emotion.classifier import EmotionClassifier

    faces = demo_faces
    clf = EmotionClassifier.load(WEIGHTS, views=views)
    net = clf.keras_model()
    one_pass = [net(tf.constant(cv2_view(faces, dx, dy, m)[..., None].astype(np.float32)), training=False).numpy()
                for dx, dy in views.shifts for m in ((False, True) if views.mirror else (False,))]
    np.testing.assert_allclose(clf.predict(faces), np.mean(one_pass, axis=0), atol=1e-5)
    one_face_per_call = EmotionClassifier.load(WEIGHTS, views=views, views_per_call=views.passes)
    np.testing.assert_allclose(one_face_per_call.predict(faces), clf.predict(faces), atol=1e-5)  # chunks keep order
    if views != MIRROR:  # the views change the answer, or they would cost 5x for nothing
        assert np.abs(clf.predict(faces) - EmotionClassifier.load(WEIGHTS, views=MIRROR).predict(faces)).max() > 1e-3


def test_the_emotion_views_option_reaches_the_recognizer_options(tmp_path):
    from mien.pipeline.app.cli import build_parser
    from mien.pipeline.app.cli.common import options_from

    (tmp_path / "photo.jpg").touch()
    (tmp_path / "clip.mp4").touch()
    for command in (["recognize", str(tmp_path / "photo.jpg")], ["video", str(tmp_path / "clip.mp4")], ["serve"]):
        assert options_from(build_parser().parse_args(command)).emotion_views == "model"
        given = build_parser().parse_args(command + ["--emotion-views", "mirror"])
        assert options_from(given).emotion_views == "mirror"


@pytest.mark.slow
def test_a_recognizer_with_cheaper_views_says_so_in_its_emotion_version(mien_home, recognizer):
    if recognizer.emotion_model is None:
        pytest.skip("no shipped emotion model")
    from mien.pipeline import Recognizer
    from mien.pipeline.options import Options

    from mien.emotion.views import NONE

    fast = Recognizer(Options(emotion_views="none"), identity=False)
    assert fast.emotion_model.views == NONE and recognizer.emotion_model.views == MIRROR  # the shipped: mirror each
    assert fast.emotion_model.passes < recognizer.emotion_model.passes
    # results made with other views carry another emotion version, so they are never mistaken for the same
    assert fast.emotion_model.version != recognizer.emotion_model.version
    assert [m.version.endswith("-none") for m in fast.emotion_model.members] == [True, True]
    with pytest.raises(ValueError, match="emotion_views must be"):
        Recognizer(Options(emotion_views="ten-crop"), identity=False)
