"""Weights are resolved in one place, checksum-verified, and a bad file says how to fix it."""
from __future__ import annotations

import pytest

from mien.identity.errors import ModelFileError


def test_missing_weights_say_how_to_fetch(tmp_path, monkeypatch):
    from mien.pipeline import assets

    monkeypatch.setenv("MIEN_HOME", str(tmp_path))
    with pytest.raises(assets.ModelMissingError, match="mien models fetch"):
        assets.resolve("facenet")


def test_wrong_hash_weights_are_refused_and_nothing_is_installed(tmp_path, monkeypatch):
    from mien.pipeline import assets

    monkeypatch.setenv("MIEN_HOME", str(tmp_path / "home"))
    fake = tmp_path / "facenet_keras.h5"
    fake.write_bytes(b"\x89HDF\r\n" + b"0" * 1000)
    with pytest.raises(ModelFileError, match="facenet_keras.h5.*sha256"):
        assets.fetch("facenet", from_path=fake)
    assert not (tmp_path / "home" / "weights" / "facenet_keras.h5").exists()
    # a corrupted file already in place is detected on load, with the fix
    (tmp_path / "home" / "weights").mkdir(parents=True, exist_ok=True)
    (tmp_path / "home" / "weights" / "facenet_keras.h5").write_bytes(b"truncated")
    with pytest.raises(ModelFileError, match="expected sha256.*delete it and run `mien models fetch`"):
        assets.resolve("facenet")


def test_fetch_from_a_local_copy(tmp_path, monkeypatch, facenet_weights):
    from mien.pipeline import assets

    monkeypatch.setenv("MIEN_HOME", str(tmp_path))
    path = assets.fetch("facenet", from_path=facenet_weights)
    assert path == tmp_path / "weights" / "facenet_keras.h5"
    assert assets.sha256_file(path) == assets.FACENET.sha256


def test_an_in_place_edit_of_the_weights_is_caught_even_with_the_same_size_and_mtime(tmp_path, monkeypatch,
                                                                                      facenet_weights):
    import os

    from mien.pipeline import assets

    monkeypatch.setenv("MIEN_HOME", str(tmp_path))
    path = assets.fetch("facenet", from_path=facenet_weights)
    assert assets.resolve("facenet") == path
    st = path.stat()
    with open(path, "r+b") as f:  # flip one byte deep inside the weights, keep the size
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and restore the modification time
    with pytest.raises(ModelFileError, match="expected sha256"):
        assets.resolve("facenet")
