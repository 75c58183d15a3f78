"""FaceNet and the emotion network on OpenVINO (the default runtime) against TensorFlow (the reference): same
embeddings, same emotions, same answers on the demo; conversions cached under MIEN_HOME, keyed by weights."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tensorflow_recognizer(enrolled):
    from mien.pipeline import Options, Recognizer

    return Recognizer(Options(runtime="tensorflow"))


def _val_images(demo_photos):
    from mien.pipeline.images import load_image

    paths = sorted(p for p in demo_photos[1].rglob("*") if p.is_file())
    return paths, [load_image(p) for p in paths]


def test_openvino_facenet_gives_tensorflows_embeddings(recognizer, tensorflow_recognizer, demo_photos):
    from mien.pipeline.runtime import CompiledForward

    assert isinstance(recognizer.embedder._forward, CompiledForward)
    _, images = _val_images(demo_photos)
    crops = [recognizer.identity_crop(img, f) for img in images for f in recognizer.detect(img)]
    assert len(crops) >= 25
    fast = recognizer.embed_crops(crops)
    reference = tensorflow_recognizer.embed_crops(crops)
    cosine = (fast * reference).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
    assert recognizer.embedder.version == tensorflow_recognizer.embedder.version  # stored embeddings stay valid


def test_openvino_emotion_gives_tensorflows_probabilities(recognizer, tensorflow_recognizer, demo_photos):
    if recognizer.emotion_model is None:
        pytest.skip("no shipped emotion model")
    _, images = _val_images(demo_photos)
    from mien.pipeline.models import load_emotion_model

    faces = np.stack([recognizer.emotion_crop(img, f) for img in images for f in recognizer.detect(img)])
    fp32 = load_emotion_model(required=True, precision="fp32")
    fast = fp32.predict(faces)
    reference = tensorflow_recognizer.emotion_model.predict(faces)
    assert np.abs(fast - reference).max() < 1e-4  # the conversion itself is exact
    assert (fast.argmax(axis=1) == reference.argmax(axis=1)).all()
    # and again after TensorFlow has run: a model used straight from an in-memory conversion shared its
    # weights with freed TensorFlow buffers and came out wrong here (this session converted it in-process)
    np.testing.assert_allclose(fp32.predict(faces), fast, atol=1e-6)
    assert fp32.version == tensorflow_recognizer.emotion_model.version
    # the default runs the emotion networks in bf16 where the CPU has it (runtime.AUTO_PRECISION): the same labels
    product = recognizer.emotion_model.predict(faces)
    assert np.abs(product - reference).max() < 0.03 and (product.argmax(axis=1) == reference.argmax(axis=1)).all()


def test_names_and_emotions_on_the_demo_are_the_same_on_both_runtimes(recognizer, tensorflow_recognizer,
                                                                      demo_photos):
    paths, images = _val_images(demo_photos)
    names = [p.name for p in paths]

    def answers(rec):
        return [[(f.identity.name, f.emotion.label if f.emotion else None) for f in r.faces]
                for r in rec.recognize_batch(images, names)]

    fast = answers(recognizer)
    assert fast == answers(tensorflow_recognizer)
    assert sum(1 for faces, p in zip(fast, paths) if faces and faces[0][0] == p.parent.name) == 25


def test_recognition_from_the_cache_imports_no_tensorflow(recognizer, enrolled, mien_home):
    """Once converted, a new process loads the OpenVINO models from MIEN_HOME without importing TensorFlow; fitting
    the SVM loads scikit-learn without the pandas and pyarrow it would pull in (63 MB; pandas still imports afterwards
    for whoever needs it), and a process that finds the fit kept imports no scikit-learn at all."""
    from mien.pipeline.runtime import cache_dir

    cached = sorted(p.name for p in cache_dir().iterdir())
    assert any(n.startswith("facenet-6acdd8fb3a3fb2b5-") for n in cached)
    def fresh_process(code: str) -> list[str]:
        """The lines a new Python process prints running ``code`` after loading mien's models from MIEN_HOME."""
        out = subprocess.run([sys.executable, "-c", "import sys; import numpy as np; "
                              "from mien.pipeline import Recognizer; " + code], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "MIEN_HOME": str(mien_home)}, cwd=os.getcwd())
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()

    assert fresh_process("r = Recognizer(identity=False); r.recognize(np.zeros((200, 200, 3), np.uint8)); "
                         "r.embed_crops([np.zeros((160, 160, 3), np.uint8)]); "
                         "print('tensorflow' in sys.modules)")[-1] == "False"
    from mien.pipeline.gallery import index_dir

    for saved in index_dir(mien_home).glob("*.svm-*.npz"):  # the first process below fits the SVM again
        saved.unlink()
    assert fresh_process("r = Recognizer(emotion=False); "
                         "assert r.classifier.svm is not None and 'sklearn' in sys.modules; "
                         "r.identify(r.embed_crops([np.zeros((160, 160, 3), np.uint8)])); "
                         "print('pandas' in sys.modules, 'pyarrow' in sys.modules); import pandas; "
                         "print(pandas.__name__)")[-2:] == ["False False", "pandas"]
    # the next one loads the fit the first one kept: no scikit-learn at all (issue 36: ~1 s of a cold start)
    assert fresh_process("r = Recognizer(emotion=False); "
                         "r.identify(r.embed_crops([np.zeros((160, 160, 3), np.uint8)])); "
                         "print(r.classifier.svm is None, r.classifier.fitted_svm is not None, 'sklearn' in sys.modules)"
                         )[-1] == "True True False"


def test_a_damaged_conversion_is_converted_again(tmp_path, monkeypatch, caplog):
    """A truncated cached model is noticed, converted again from its source, and the new one is used;
    another source digest is another cache entry."""
    from mien.pipeline.runtime import cache_dir, cache_key, openvino_forward

    monkeypatch.setenv("MIEN_HOME", str(tmp_path))
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    calls = []

    def tf_function():
        import tensorflow as tf

        calls.append(1)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def forward(x):
            return tf.matmul(x, tf.constant(weights))

        return forward

    x = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    np.testing.assert_allclose(openvino_forward("toy", "ab" * 32, tf_function)(x), x @ weights, rtol=1e-5)
    folder = cache_dir() / cache_key("toy", "ab" * 32)
    assert (folder / "model.xml").is_file() and len(calls) == 1
    np.testing.assert_allclose(openvino_forward("toy", "ab" * 32, tf_function)(x), x @ weights, rtol=1e-5)
    assert len(calls) == 1  # from the cache
    (folder / "model.xml").write_text("<net")  # truncated
    np.testing.assert_allclose(openvino_forward("toy", "ab" * 32, tf_function)(x), x @ weights, rtol=1e-5)
    assert len(calls) == 2 and "making it again" in caplog.text
    data = bytearray((folder / "model.bin").read_bytes())  # same size, other bytes: a flipped weight
    data[len(data) // 2] ^= 0xFF
    (folder / "model.bin").write_bytes(bytes(data))
    np.testing.assert_allclose(openvino_forward("toy", "ab" * 32, tf_function)(x), x @ weights, rtol=1e-5)
    assert len(calls) == 3 and "model.bin differs from what was written" in caplog.text
    assert cache_key("toy", "cd" * 32) != cache_key("toy", "ab" * 32)


def test_precision_resolves_per_network_and_is_recorded(recognizer, demo_photos):
    """--precision (issues 25, 36): auto runs the emotion networks in bf16 where the CPU has bf16 instructions,
    FaceNet in INT8 once it is made (test_quantize) and MTCNN in fp32; bf16 runs FaceNet in bf16 too, within cosine
    0.999 of fp32; what ran is in every result's models."""
    from mien.pipeline import Options, Recognizer
    from mien.pipeline.models import build_facenet
    from mien.pipeline.provenance import model_versions
    from mien.pipeline.runtime import AUTO_PRECISION, has_bf16, network_precision

    bf16 = has_bf16()
    assert AUTO_PRECISION == {"mtcnn": "fp32", "facenet": "int8", "emotion": "bf16"}
    # the session's recognizer is built in a home without the INT8 model (test_quantize makes it later): fp32
    assert recognizer.precision == {"detector": "fp32", "embedder": "fp32", "emotion": "bf16" if bf16 else "fp32"}
    assert model_versions(recognizer)["precision"] == recognizer.precision
    assert network_precision("fp32", "emotion") == "fp32"
    assert network_precision("bf16", "facenet") == ("bf16" if bf16 else "fp32")
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        Recognizer(Options(precision="int4"), emotion=False, identity=False)
    _, images = _val_images(demo_photos)
    crops = [recognizer.identity_crop(img, f) for img in images[:8] for f in recognizer.detect(img)]
    fp32 = build_facenet(precision="fp32").embed(np.stack(crops))
    bf16 = build_facenet(precision="bf16").embed(np.stack(crops))
    assert (fp32 * bf16).sum(axis=1).min() >= 0.999


def test_a_damaged_cache_in_a_read_only_folder_is_one_clear_error(tmp_path, monkeypatch):
    """Issue 33 item 12: a damaged conversion in a cache folder that cannot be written gave a traceback; now one
    MienError naming the folder and the fix. (Root writes everywhere, so the read-only folder is simulated: its
    removal does nothing, and writing beside it fails as it does for a user without the right.)"""
    import shutil
    import tempfile

    from mien.errors import MienError
    from mien.pipeline import runtime

    monkeypatch.setenv("MIEN_HOME", str(tmp_path))
    entry = runtime.cache_dir() / "toy-entry"
    entry.mkdir(parents=True)
    (entry / "model.xml").write_text("<net")  # damaged
    never_made = lambda: pytest.fail("a model was made in a folder that cannot keep it")  # noqa: E731
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(MienError, match="cannot be removed") as err:
        runtime.cached_model("toy-entry", never_made, "toy model")
    assert str(entry) in str(err.value) and "MIEN_HOME" in str(err.value)

    monkeypatch.undo()
    monkeypatch.setenv("MIEN_HOME", str(tmp_path))
    shutil.rmtree(entry)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", denied)
    with pytest.raises(MienError, match="cannot write the toy model there") as err:
        runtime.cached_model("toy-entry", never_made, "toy model")
    assert "Permission denied" in str(err.value) and "MIEN_HOME" in str(err.value)
