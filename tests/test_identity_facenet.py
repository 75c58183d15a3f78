"""FaceNet: Taniai's Keras-2 weights load by name into the rebuilt network and give useful embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from mien.identity import facenet
from mien.identity.errors import ModelFileError


def test_prewhiten_is_per_image_standardisation():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(3, 160, 160, 3)).astype(np.uint8)
    faces[1] = 7  # flat image: std 0 must not divide by zero
    out = facenet.prewhiten(faces)
    assert out.dtype == np.float32
    assert np.allclose(out[0].mean(), 0, atol=1e-4) and np.isclose(out[0].std(), 1, atol=1e-3)
    assert np.isfinite(out[1]).all() and np.allclose(out[1], 0)


@pytest.mark.slow
def test_all_490_tensors_load_by_name(facenet_weights):
    model = facenet.build_inception_resnet_v1()
    assert len(model.layers) == 426
    assert facenet.load_taniai_weights(model, facenet_weights) == facenet.EXPECTED_TENSORS == 490
    assert model.output_shape == (None, 128)


def test_a_file_that_is_not_facenet_is_refused(tmp_path):
    import h5py

    bogus = tmp_path / "other.h5"
    with h5py.File(bogus, "w") as f:
        f.attrs["layer_names"] = [b"Conv2d_1a_3x3"]
        g = f.create_group("Conv2d_1a_3x3")
        g.attrs["weight_names"] = [b"kernel:0"]
        g["kernel:0"] = np.zeros((5, 5, 3, 32), np.float32)
    model = facenet.build_inception_resnet_v1()
    with pytest.raises(ModelFileError, match="Conv2d_1a_3x3.*shapes|not Taniai"):
        facenet.load_taniai_weights(model, bogus)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelFileError, match="garbage.h5.*mien models fetch"):
        facenet.load_taniai_weights(model, garbage)


@pytest.mark.slow
def test_same_person_is_closer_than_different_people(recognizer, demo_photos):
    from mien.pipeline.images import load_image

    train = demo_photos[0]
    people = ["ben_afflek", "madonna", "mindy_kaling"]
    vecs, who = [], []
    for p in people:
        for f in sorted((train / p).iterdir())[:4]:
            img = load_image(f)
            faces = recognizer.detect(img)
            vecs.append(recognizer.embed_faces(img, faces[:1])[0])
            who.append(p)
    v = np.stack(vecs)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    d = np.linalg.norm(v[:, None] - v[None], axis=-1)
    same = np.array(who)[:, None] == np.array(who)[None]
    off_diag = ~np.eye(len(who), dtype=bool)
    assert d[same & off_diag].mean() + 0.3 < d[~same].mean()
    # every photo's nearest other photo is of the same person
    nearest = np.where(off_diag, d, np.inf).argmin(axis=1)
    assert (np.array(who)[nearest] == np.array(who)).all()
