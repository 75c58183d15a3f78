"""FER+'s 8 emotions (issue 24): the shipped FER+ model scores as its metrics.json says on FER+ PrivateTest majority
labels, and `--emotion-model ferplus` runs it in recognize, the server and the batch rows, each saying which label
set it used."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mien.emotion.labels import EMOTIONS, FERPLUS_EMOTIONS

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "emotion-ferplus"
DATA = REPO.parent / "shared" / "data"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHIPPED / "model.json").is_file(), reason=f"no FER+ model at {SHIPPED}")]


@pytest.mark.skipif(not (DATA / "fer2013new.csv").is_file(), reason=f"FER2013 / FER+ not at {DATA}")
def test_the_shipped_ferplus_model_scores_its_metrics_on_ferplus_private_test(tmp_path):
    """The done-when, through the product's command: >= 80 % on FER+ PrivateTest majority labels (8 emotions)."""
    from test_cli import mien

    out = tmp_path / "eval.json"
    run = mien("evaluate", "emotion", "--emotion-model", "ferplus", "--labels", "ferplus", "--data",
               DATA / "fer2013.npz", "--ferplus", DATA / "fer2013new.csv", "--split", "PrivateTest", "--json", out)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["labels"] == list(FERPLUS_EMOTIONS) and result["label_set"] == "ferplus-majority-8"
    shipped = json.loads((SHIPPED / "metrics.json").read_text())["shipped"]
    # the shipped weights (their sha256 in the version), run as recognition runs them: the mirror only when unsure
    assert result["model"].startswith(shipped["version"] + "-") and result["model"].endswith("-mirror-if-unsure0.3")
    assert result["n"] == shipped["private_test"]["n"]  # the same faces: every one with a FER+ majority among the 8
    # the default bf16 arithmetic against the fp32 export-time evaluation: within 0.3 point (issue 25's gate)
    assert abs(result["accuracy"] - shipped["private_test"]["accuracy"]) <= 0.003
    assert result["accuracy"] >= 0.80, result["accuracy"]
    assert result["per_class_accuracy"]["contempt"] is not None and result["support"]["contempt"] > 0

    wrong = mien("evaluate", "emotion", "--emotion-model", "ferplus", "--data", DATA / "fer2013.npz", "--limit", "10")
    assert wrong.returncode == 2 and "--labels ferplus" in wrong.stderr


def test_recognize_with_the_ferplus_model_names_contempt_among_its_labels(enrolled, mien_home, demo_photos):
    from test_cli import mien

    photo = sorted((demo_photos[1] / "madonna").iterdir())[0]
    runs = {model: mien("recognize", photo, "--emotion-model", model, "--json", "-", home=mien_home)
            for model in ("ferplus", "fer2013")}
    for model, labels in (("ferplus", FERPLUS_EMOTIONS), ("fer2013", EMOTIONS)):
        assert runs[model].returncode == 0, runs[model].stderr
        doc = json.loads(runs[model].stdout)
        assert doc["models"]["emotion_labels"] == model
        [face] = doc["images"][0]["faces"]
        assert face["identity"]["name"] == "madonna"
        assert list(face["emotion"]["scores"]) == list(labels) and face["emotion"]["label"] in labels
        assert sum(face["emotion"]["scores"].values()) == pytest.approx(1.0, abs=1e-3)


def test_the_server_and_batch_rows_carry_the_ferplus_label_set(recognizer, enrolled, demo_photos, mien_home,
                                                               tmp_path, monkeypatch, caplog):
    from conftest import home_copy
    from test_server import AUTH, jpeg, make_client

    from mien.pipeline import Recognizer
    from mien.pipeline.batch.rows import image_rows, provenance
    from mien.pipeline.images import load_image
    from mien.pipeline.models import load_emotion_model
    from mien.pipeline.options import Options

    rec = Recognizer(Options(emotion_model="ferplus"), detector=recognizer.detector, embedder=recognizer.embedder)
    assert rec.emotion_model.labels == FERPLUS_EMOTIONS
    client = make_client(rec, home_copy(mien_home, tmp_path / "home"))
    assert client.get("/health").json()["models"]["emotion_labels"] == "ferplus"
    photo = sorted((demo_photos[1] / "madonna").iterdir())[0]
    answer = client.post("/recognize", files={"file": jpeg(photo)}, headers=AUTH).json()
    assert answer["models"]["emotion_labels"] == "ferplus"
    assert list(answer["faces"][0]["emotion"]["scores"]) == list(FERPLUS_EMOTIONS)

    record = rec.recognize(load_image(photo), photo.name)
    [row] = image_rows(record, "0" * 64, None, provenance(rec))
    assert row["emotion_labels"] == "ferplus"
    assert row["emotion_contempt"] == pytest.approx(record.faces[0].emotion.scores["contempt"])

    # the FER2013 default asked for, an 8-emotion file given by MIEN_EMOTION_WEIGHTS: refused, saying which it is
    monkeypatch.setenv("MIEN_EMOTION_WEIGHTS", str(SHIPPED / "emotion_vgg48.weights.h5"))
    assert load_emotion_model() is None
    assert "is a ferplus model (8 emotions), not the fer2013 one" in caplog.text
    assert np.isfinite(rec.emotion_model.predict(np.zeros((1, 48, 48), np.uint8))).all()



def test_mien_emotion_weights_applies_to_the_ferplus_choice_too(monkeypatch, caplog):
    """Issue 33 (low): MIEN_EMOTION_WEIGHTS was silently ignored with --emotion-model ferplus (the shipped FER+
    model ran); now it is the model whichever label set is asked for, and one of the other label set is refused
    naming the file and the choice that fits it."""
    from mien.pipeline.assets import emotion_weights_path
    from mien.pipeline.models import load_emotion_model

    seven = REPO / "models" / "emotion-vgg48" / "emotion_vgg48.weights.h5"  # a FER2013 (7-emotion) network
    monkeypatch.setenv("MIEN_EMOTION_WEIGHTS", str(seven))
    assert emotion_weights_path("ferplus") == seven
    assert load_emotion_model(label_set="ferplus", runtime="tensorflow") is None
    assert f"{seven} is a fer2013 model (7 emotions), not the ferplus one asked for; choose --emotion-model " \
           "fer2013" in caplog.text
    monkeypatch.setenv("MIEN_EMOTION_WEIGHTS", str(SHIPPED / "emotion_vgg48.weights.h5"))
    assert load_emotion_model(label_set="ferplus", runtime="tensorflow").labels == FERPLUS_EMOTIONS
