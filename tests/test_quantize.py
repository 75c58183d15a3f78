"""``--precision int8`` (issue 25): FaceNet quantized by NNCF on the demo enrollment faces, once per machine."""
from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_int8_facenet_is_quantized_once_and_names_the_demo(enrolled, recognizer, demo_photos, caplog):
    """The INT8 FaceNet is made on first use and then read from the cache; its embeddings stay close to fp32's, the
    gallery enrolled in fp32 still names every held-out photo, and every result says the embedder ran in int8."""
    from mien.pipeline import Options, Recognizer
    from mien.pipeline.images import load_image
    from mien.pipeline.models import build_facenet
    from mien.pipeline.provenance import model_versions

    caplog.set_level(logging.INFO, logger="mien")
    rec = Recognizer(Options(precision="int8"))
    assert rec.precision["embedder"] == "int8" and model_versions(rec)["precision"] == rec.precision
    assert rec.precision["emotion"] == recognizer.precision["emotion"]  # the other networks as auto
    assert caplog.text.count("making the INT8 facenet") == 1
    caplog.clear()
    again = build_facenet(precision="int8")
    assert "making" not in caplog.text  # from the cache

    paths = sorted(p for p in demo_photos[1].rglob("*") if p.is_file())
    images = [load_image(p) for p in paths]
    crops = np.stack([rec.identity_crop(img, f) for img in images for f in rec.detect(img)])
    cosine = (recognizer.embedder.embed(crops) * again.embed(crops)).sum(axis=1)
    assert cosine.mean() >= 0.995 and cosine.min() >= 0.98, cosine  # measured 0.9976, 0.9935 (fast bias correction: 0.992, 0.92)
    named = [any(f.identity and f.identity.name == p.parent.name for f in rec.recognize(img).faces)
             for p, img in zip(paths, images)]
    assert sum(named) == len(paths) == 25


def test_int8_without_nncf_says_how_to_install_it(enrolled, demo_photos):
    """Without NNCF, --precision int8 is one line naming the extra to install, not a traceback."""
    code = ("import sys; sys.modules['nncf'] = None\n"
            "from mien.pipeline.app.cli import main\n"
            f"sys.exit(main(['recognize', {str(next(demo_photos[1].rglob('*.jpg')))!r}, '--precision', 'int8']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "pip install 'mien[int8]'" in run.stderr and "Traceback" not in run.stderr
