"""The open-set SVM on synthetic embeddings: persistence, staleness, thresholds, one-person mode."""
from __future__ import annotations

import numpy as np
import pytest

from identity.classifier import UNKNOWN, IdentityClassifier, Thresholds, read_sidecar
from identity.errors import ModelFileError, NotEnrolledError, StaleModelError
from identity.facenet import l2_normalize


def _clusters(n_people=3, per=6, dim=128, spread=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(n_people, dim)))
    x = np.concatenate([l2_normalize(c + spread * rng.normal(size=(per, dim)) / np.sqrt(dim) * 4) for c in centres])
    y = [f"person {i}" for i in range(n_people) for _ in range(per)]
    return centres, x.astype(np.float32), y


def test_known_faces_are_named_and_strangers_are_unknown():
    centres, x, y = _clusters()
    clf = IdentityClassifier(x, y, "facenet-test", Thresholds(distance=0.9, probability=0.5))
    near = l2_normalize(centres + 0.02)
    assert [m.name for m in clf.predict(near)] == ["person 0", "person 1", "person 2"]
    stranger = l2_normalize(np.random.default_rng(9).normal(size=(4, 128))).astype(np.float32)
    matches = clf.predict(stranger)
    assert all(m.name == UNKNOWN and m.candidate.startswith("person") for m in matches)
    # thresholds are overridable per call
    assert all(m.name != UNKNOWN for m in clf.predict(stranger, Thresholds(distance=4.0, probability=0.0)))


def test_single_enrolled_person_uses_distance_only():
    centres, x, y = _clusters(n_people=1)
    clf = IdentityClassifier(x, y, "facenet-test")
    assert clf.predict(l2_normalize(centres + 0.01))[0].name == "person 0"
    other = l2_normalize(-centres)
    assert clf.predict(other)[0].name == UNKNOWN


def test_save_load_roundtrip_and_stale_model(tmp_path):
    _, x, y = _clusters()
    path = tmp_path / "classifier.joblib"
    IdentityClassifier(x, y, "facenet-aaa").save(path)
    side = read_sidecar(path)
    assert side["embedder_version"] == "facenet-aaa" and side["persons"] == {f"person {i}": 6 for i in range(3)}
    loaded = IdentityClassifier.load(path, expected_embedder_version="facenet-aaa")
    assert [m.name for m in loaded.predict(x[:1])] == ["person 0"]
    with pytest.raises(StaleModelError, match="facenet-aaa.*facenet-bbb.*mien train-svm"):
        IdentityClassifier.load(path, expected_embedder_version="facenet-bbb")
    with pytest.raises(NotEnrolledError, match="mien enroll"):
        IdentityClassifier.load(tmp_path / "none.joblib")
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="bad.joblib: not a mien identity classifier"):
        IdentityClassifier.load(bad)


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    import joblib

    _, x, y = _clusters()
    path = tmp_path / "classifier.joblib"
    IdentityClassifier(x, y, "facenet-aaa").save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", boom)
    with pytest.raises(OSError):
        IdentityClassifier(x[:6], y[:6], "facenet-aaa").save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_embedding_cache_roundtrip_and_version_check(tmp_path, caplog):
    from identity.cache import CacheEntry, EmbeddingCache

    path = tmp_path / "cache.npz"
    cache = EmbeddingCache(path, "facenet-aaa|mtcnn-min20")
    vec = np.arange(128, dtype=np.float32) / 128
    cache.put("k1", CacheEntry(vec, None, (1, 2, 3, 4)))
    cache.put("k2", CacheEntry(None, "no face found"))
    cache.save()
    again = EmbeddingCache(path, "facenet-aaa|mtcnn-min20")
    assert np.array_equal(again.get("k1").embedding, vec) and again.get("k1").bbox == (1, 2, 3, 4)
    assert again.get("k2").embedding is None and again.get("k2").reason == "no face found"
    other = EmbeddingCache(path, "facenet-bbb|mtcnn-min20")  # other weights or detector settings: not reused
    assert other.get("k1") is None and "ignoring it" in caplog.text


@pytest.mark.parametrize("damage", ["empty", "truncated", "inconsistent", "garbage"])
def test_a_corrupt_embedding_cache_heals_on_the_next_save(tmp_path, caplog, damage):
    import json
    import zipfile

    from identity.cache import CacheEntry, EmbeddingCache

    path, version = tmp_path / "cache.npz", "facenet-aaa|mtcnn-min20"
    good = EmbeddingCache(path, version)
    good.put("k1", CacheEntry(np.ones(128, np.float32), None, (1, 2, 3, 4)))
    good.save()
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:  # a well-formed file whose metadata lists more photos than it has embeddings
        with np.load(path) as d:
            meta = json.loads(str(d["meta"]))
            meta.update(keys=["k1", "k2"], reasons=[None, None], bboxes=[None, None])
            np.savez(path, embeddings=d["embeddings"], meta=np.array(json.dumps(meta)))
        assert zipfile.is_zipfile(path)
    cache = EmbeddingCache(path, version)  # no exception: a warning, then an empty cache
    assert cache.entries == {} and "unreadable" in caplog.text
    cache.put("k3", CacheEntry(np.zeros(128, np.float32), None, (0, 0, 1, 1)))
    cache.save()
    assert set(EmbeddingCache(path, version).entries) == {"k3"}  # healed: readable again
