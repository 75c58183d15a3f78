"""`--mirror unsure` (the default): FaceNet and the emotion networks look at a face's mirror image only where the face
alone gives an answer near a threshold. There they give exactly what `--mirror always` gives, elsewhere the face's
own view, and the answers stay the same (benchmarks/mirror.py measures it on LFW and FER2013)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fer_faces() -> np.ndarray:
    """400 FER2013 PublicTest faces: hard enough that some answers are unsure."""
    if not (DATA / "fer2013.npz").is_file():
        pytest.skip(f"FER2013 not at {DATA}")
    from mien.emotion.training.data import load_dataset

    data = load_dataset(str(DATA / "fer2013.npz"))
    return data.images[data.usage == "PublicTest"][:400]


def test_emotion_sees_the_mirror_exactly_where_the_answer_is_unsure(mien_home, fer_faces):
    from mien.emotion.views import MirrorWhenUnsure
    from mien.pipeline.models import load_emotion_model

    unsure = load_emotion_model(required=True)  # the default
    always = load_emotion_model(required=True, mirror="always")
    assert isinstance(unsure, MirrorWhenUnsure) and not isinstance(always, MirrorWhenUnsure)
    assert unsure.version != always.version  # results made one way are never taken for the other's
    single = unsure.model.predict(fer_faces)
    flagged = unsure.unsure(single)
    assert 0.1 < flagged.mean() < 0.6, flagged.mean()  # neither never nor always
    got, want = unsure.predict(fer_faces), always.predict(fer_faces)
    np.testing.assert_allclose(got[flagged], want[flagged], atol=2e-3)  # the mean of both views, as always
    np.testing.assert_allclose(got[~flagged], single[~flagged], atol=1e-6)  # the face's own view
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.99
    # an 'uncertain' threshold asked for is a threshold too: a sure face whose top probability sits on it is unsure
    sure = int(np.flatnonzero(~flagged)[0])
    on_it = float(single[sure].max())
    assert unsure.unsure(single[[sure]], threshold=on_it)[0] and not unsure.unsure(single[[sure]])[0]


def test_identity_sees_the_mirror_only_near_a_threshold(enrolled, recognizer, demo_photos):
    from mien.pipeline import Options, Recognizer
    from mien.pipeline.images import load_image

    always = Recognizer(Options(mirror="always"), emotion=False)
    images = [load_image(p) for p in sorted(demo_photos[1].rglob("*.jpg"))]
    crops = [recognizer.identity_crop(img, f) for img in images for f in recognizer.detect(img)]
    emb_always, named_always = always.embed_and_identify(crops)
    emb, named = recognizer.embed_and_identify(crops)
    assert [m.name for m in named] == [m.name for m in named_always]
    same = np.abs(emb - emb_always).max(axis=1) < 1e-4
    assert 0 < (~same).sum(), "every face was mirrored: the rule saves nothing"
    # a clear face (named with confidence, its distance far from the threshold) is looked at alone ...
    clear = next(i for i, m in enumerate(named) if m.known and m.confidence > 0.8 and not same[i])
    # ... until the distance threshold sits on its distance: then it sees the mirror and matches `always` exactly
    view = recognizer.with_options(distance_threshold=named_always[clear].distance)
    [vec], [match] = view.embed_and_identify([crops[clear]])
    np.testing.assert_allclose(vec, emb_always[clear], atol=1e-4)
    assert match.distance == pytest.approx(named_always[clear].distance, abs=1e-4)


def test_the_mirror_option_is_checked_and_reaches_the_options(tmp_path):
    from mien.pipeline import Options, Recognizer
    from mien.pipeline.app.cli import build_parser
    from mien.pipeline.app.cli.common import options_from

    (tmp_path / "photo.jpg").touch()
    assert options_from(build_parser().parse_args(["recognize", str(tmp_path / "photo.jpg")])).mirror == "unsure"
    given = build_parser().parse_args(["recognize", str(tmp_path / "photo.jpg"), "--mirror", "always"])
    assert options_from(given).mirror == "always"
    with pytest.raises(ValueError, match="mirror must be one of"):
        Recognizer(Options(mirror="sometimes"))
