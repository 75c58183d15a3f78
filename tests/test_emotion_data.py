"""FER2013 loaders: npz, Kaggle CSV and image folders agree; bad files fail naming the row."""

from __future__ import annotations

import numpy as np
import pytest

from emotion.training.data import DataFormatError, load_csv, load_dataset, load_image_folders, load_npz, validation_split
from emotion.labels import EMOTIONS

USAGES = ("Training", "PublicTest", "PrivateTest")


def _tiny(n_per_split: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 3 * n_per_split
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = np.array([i % 7 for i in range(n)], np.int8)
    usage = np.repeat(USAGES, n_per_split)
    return images, labels, usage


def _write_csv(path, images, labels, usage, header="emotion,pixels,Usage"):
    lines = [header] + [f"{l},{' '.join(map(str, im.ravel()))},{u}" for im, l, u in zip(images, labels, usage)]
    path.write_text("\n".join(lines) + "\n")


def _write_folders(root, images, labels, usage):
    import cv2

    names = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
    for i, (im, l, u) in enumerate(zip(images, labels, usage)):
        d = root / names[u] / EMOTIONS[l]
        d.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(d / f"{i:05d}.png"), im)


def _canonical(ds):
    """Sort rows so datasets from different layouts compare equal."""
    key = [ds.usage[i] + ds.images[i].tobytes().hex() for i in range(len(ds.labels))]
    order = np.argsort(key)
    return ds.images[order], ds.labels[order], ds.usage[order]


def test_three_loaders_agree(tmp_path):
    images, labels, usage = _tiny()
    np.savez(tmp_path / "f.npz", images=images, labels=labels, usage=usage)
    _write_csv(tmp_path / "f.csv", images, labels, usage)
    _write_folders(tmp_path / "folders", images, labels, usage)
    a, b, c = load_npz(tmp_path / "f.npz"), load_csv(tmp_path / "f.csv"), load_image_folders(tmp_path / "folders")
    for ds in (a, b, c):
        assert ds.images.dtype == np.uint8 and ds.images.shape == (21, 48, 48)
        assert ds.counts() == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
        assert len(ds.sha256) == 64
    ref = _canonical(a)
    for ds in (b, c):
        got = _canonical(ds)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_array_equal(got[2], ref[2])
    # CSV keeps row order exactly.
    np.testing.assert_array_equal(b.images, images)
    # load_dataset dispatches on the path type.
    assert load_dataset(tmp_path / "f.csv").source.endswith("f.csv")
    assert load_dataset(tmp_path / "folders").counts() == a.counts()


def test_csv_wrong_columns_names_header(tmp_path):
    images, labels, usage = _tiny(1)
    _write_csv(tmp_path / "bad.csv", images, labels, usage, header="label,pixels,Usage")
    with pytest.raises(DataFormatError, match=r"line 1 .*missing columns \['emotion'\]"):
        load_csv(tmp_path / "bad.csv")


def test_csv_wrong_pixel_count_names_row(tmp_path):
    images, labels, usage = _tiny(2)
    p = tmp_path / "bad.csv"
    _write_csv(p, images, labels, usage)
    lines = p.read_text().splitlines()
    lines[4] = lines[4].replace(",", ",0 ", 1)  # one extra pixel on data row 3
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"line 5 \(data row 3\): 2305 pixels, expected 2304"):
        load_csv(p)


def test_csv_bad_label_and_usage(tmp_path):
    images, labels, usage = _tiny(1)
    p = tmp_path / "bad.csv"
    _write_csv(p, images, np.array([0, 9, 1]), usage)
    with pytest.raises(DataFormatError, match=r"line 3 .*emotion 9"):
        load_csv(p)
    _write_csv(p, images, labels, np.array(["Training", "Test", "PrivateTest"]))
    with pytest.raises(DataFormatError, match=r"line 3 .*Usage 'Test'"):
        load_csv(p)


def test_npz_missing_key_and_folder_unknown_emotion(tmp_path):
    np.savez(tmp_path / "x.npz", images=np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(DataFormatError, match="missing arrays"):
        load_npz(tmp_path / "x.npz")
    (tmp_path / "f" / "train" / "contempt").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="unknown emotion folder 'contempt'"):
        load_image_folders(tmp_path / "f")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope.npz")


def test_validation_split_only_when_missing(tmp_path):
    images, labels, usage = _tiny(10)
    usage = np.where(usage == "PublicTest", "Training", usage)
    np.savez(tmp_path / "f.npz", images=images, labels=labels, usage=usage)
    ds = validation_split(load_npz(tmp_path / "f.npz"), fraction=0.2, seed=1)
    assert 0 < ds.counts()["PublicTest"] < 20 and ds.counts()["PrivateTest"] == 10
    again = validation_split(ds, fraction=0.5)
    np.testing.assert_array_equal(again.usage, ds.usage)
