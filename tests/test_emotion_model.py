"""Emotion architecture: VGGFace ResNet50 layout at 48x48, name mapping, Keras-2 VGGFace weight loading."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mien.emotion.backbone import (VGGFaceWeightsError, build_backbone, load_vggface_weights, to_keras3_name,
                              to_vggface_name, vggface_layers)

ORDER = {"Conv2D": ("kernel",), "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}


def test_name_mapping_round_trips():
    for name in ("conv1/7x7_s2", "conv1/7x7_s2/bn", "conv2_1_1x1_reduce/bn", "conv5_3_1x1_increase", "avg_pool"):
        k3 = to_keras3_name(name)
        assert "/" not in k3
        assert to_vggface_name(k3) == name
    with pytest.raises(ValueError, match="not be reversible"):
        to_keras3_name("bad__name")


def write_keras2_h5(path, model, skip: str | None = None, bad_shape: str | None = None) -> None:
    """Write ``model``'s VGGFace layers like Keras 2 ``save_weights`` (layer groups named with '/')."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.1.5"
        f.attrs["backend"] = b"tensorflow"
        names = []
        for layer in vggface_layers(model):
            vname = to_vggface_name(layer.name)
            if vname == skip:
                continue
            names.append(vname.encode())
            group = f.require_group(vname)
            wnames = []
            for suffix, var in zip(ORDER[type(layer).__name__], layer.weights):
                wn = f"{vname}/{suffix}:0"
                arr = var.numpy()
                if vname == bad_shape:
                    arr = arr[..., :-1]
                group.create_dataset(wn, data=arr)
                wnames.append(wn.encode())
            group.attrs["weight_names"] = wnames
        f.create_group("avg_pool").attrs["weight_names"] = np.array([], dtype="S1")
        names.append(b"avg_pool")
        f.attrs["layer_names"] = names


@pytest.fixture(scope="module")
def emotion_model():
    from mien.emotion.model import build_model

    return build_model(policy="float32")


@pytest.mark.slow
def test_model_builds_at_48_and_outputs_probabilities(emotion_model):
    assert emotion_model.input_shape == (None, 48, 48, 1)
    assert emotion_model.output_shape == (None, 7)
    assert emotion_model.get_layer(to_keras3_name("conv5_3_1x1_increase/bn")).output.shape[1:] == (2, 2, 2048)
    names = {to_vggface_name(l.name) for l in vggface_layers(emotion_model)}
    assert len(names) == 106  # 53 convolutions + 53 batch norms, as in keras-vggface RESNET50
    for n in ("conv1/7x7_s2", "conv1/7x7_s2/bn", "conv2_1_1x1_proj", "conv3_4_3x3/bn", "conv4_6_1x1_reduce",
              "conv5_3_1x1_increase/bn"):
        assert n in names
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    p = np.asarray(emotion_model(x, training=False))
    assert p.shape == (4, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert (p >= 0).all()


@pytest.mark.slow
def test_model_without_stem_pool_takes_the_same_weights_at_twice_the_resolution(tmp_path, emotion_model):
    """stem_pool=False (issue 8 step 5): the same variables, so a trained model's weights load; larger maps."""
    from mien.emotion.config import ModelConfig
    from mien.emotion.model import build_model
    from mien.emotion.weights_io import load_weights_f16, save_weights_f16

    cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), "stem_pool": False})
    assert ModelConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "stem_pool"}).stem_pool  # old json
    wide = build_model(cfg, policy="float32")
    assert wide.get_layer(to_keras3_name("conv2_1_1x1_reduce")).output.shape[1:3] == (24, 24)  # 11x11 with the pool
    assert wide.get_layer(to_keras3_name("conv5_3_1x1_increase/bn")).output.shape[1:] == (3, 3, 2048)
    save_weights_f16(emotion_model, tmp_path / "w.h5")
    load_weights_f16(wide, tmp_path / "w.h5")
    pairs = list(zip(wide.get_weights(), emotion_model.get_weights()))
    assert len(pairs) == len(emotion_model.get_weights())
    assert all(np.array_equal(a, b.astype(np.float16).astype(a.dtype)) for a, b in pairs)  # stored as float16


@pytest.mark.slow
def test_load_vggface_weights_from_keras2_layout(tmp_path, emotion_model):
    source = build_backbone()
    path = tmp_path / "rcmalli_vggface_tf_notop_resnet50.h5"
    write_keras2_h5(path, source)
    target = emotion_model.get_layer(to_keras3_name("conv3_2_3x3"))
    assert not np.allclose(target.get_weights()[0], source.get_layer(target.name).get_weights()[0])
    assert load_vggface_weights(emotion_model, path) == 106
    for layer in vggface_layers(source):
        for a, b in zip(layer.get_weights(), emotion_model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_load_vggface_weights_fails_loudly(tmp_path, emotion_model):
    source = build_backbone()
    bad = tmp_path / "missing.h5"
    write_keras2_h5(bad, source, skip="conv5_3_1x1_increase/bn", bad_shape="conv2_1_3x3")
    with pytest.raises(VGGFaceWeightsError) as err:
        load_vggface_weights(emotion_model, bad)
    msg = str(err.value)
    assert "missing layer conv5_3_1x1_increase/bn" in msg
    assert "shape mismatch conv2_1_3x3/kernel" in msg
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(VGGFaceWeightsError, match="unreadable"):
        load_vggface_weights(emotion_model, junk)
    with pytest.raises(VGGFaceWeightsError, match="not found"):
        load_vggface_weights(emotion_model, tmp_path / "absent.h5")


def test_the_vgg48_trunk_keeps_48_px_through_its_first_stage():
    """The diverse second network (issue 27): no stem stride, four stages down to 3x3, ~1.2 M weights."""
    from mien.emotion.config import ModelConfig
    from mien.emotion.model import build_model

    cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), "arch": "vgg48", "head_units": [256]})
    assert ModelConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "arch"}).arch == "resnet50"  # old json
    model = build_model(cfg, policy="float32")
    assert model.get_layer("vgg48_s1c2").output.shape[1:] == (48, 48, 32)
    assert model.get_layer("vgg48_s4_pool").output.shape[1:] == (3, 3, 256)
    assert 1_000_000 < model.count_params() < 1_500_000
    assert not vggface_layers(model)  # nothing VGGFace-named: a VGGFace weights file cannot half-load into it
    p = np.asarray(model(np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("float32")))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="arch must be one of"):
        ModelConfig.from_dict({"arch": "resnet18"})
