"""The default MTCNN backend (OpenVINO, pipeline.mtcnn_cascade) against ``mtcnn`` 1.0's own ``detect_faces``:
same networks, same faces, boxes and landmarks on every demo photo; every stage threshold is a real option."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def networks():
    from mien.pipeline.mtcnn_graphs import compile_networks

    return compile_networks()


@pytest.fixture(scope="module")
def reference():
    from mtcnn import MTCNN

    return MTCNN(device="CPU:0")


def test_each_network_computes_what_the_keras_model_computes(networks, reference):
    rng = np.random.default_rng(0)
    cases = [(networks.pnet, 0, (2, 57, 63, 3)), (networks.rnet, 1, (5, 24, 24, 3)), (networks.onet, 2, (3, 48, 48, 3))]
    for net, stage, shape in cases:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        args = (x, np.zeros((1, 1, shape[1] - 2, shape[2] - 2), np.float32)) if stage == 0 else (x,)
        expected = [np.asarray(t) for t in reference.stages[stage]._model(x)]
        got = net(*args)
        assert [e.shape for e in expected] == [g.shape for g in got]
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, atol=1e-5)


def test_pyramid_levels_on_one_canvas_come_out_as_if_run_alone(networks):
    """P-Net runs once over a canvas holding every pyramid level (-1e30 mask around each before the first
    max-pool): each level's cells equal those of the level run alone, odd sizes included, and no two levels
    overlap on the canvas."""
    from mien.pipeline.mtcnn_cascade import mosaic, pnet_output_size

    rng = np.random.default_rng(1)
    levels = [rng.uniform(-1, 1, (h, w, 3)).astype(np.float32) for h, w in ((91, 67), (64, 47), (45, 33), (37, 45),
                                                                              (16, 12), (13, 13))]
    canvas, mask, corners = mosaic(levels)
    assert canvas.shape[1] % 16 == canvas.shape[2] % 16 == 0
    taken = np.zeros(canvas.shape[1:3], int)
    for (y, x), level in zip(corners, levels):
        taken[y:y + level.shape[0], x:x + level.shape[1]] += 1
    assert taken.max() == 1
    reg_map, prob_map = networks.pnet(canvas, mask)
    for (y, x), level in zip(corners, levels):
        h, w = level.shape[:2]
        alone = networks.pnet(level[None], np.zeros((1, 1, h - 2, w - 2), np.float32))
        oh, ow = pnet_output_size(h), pnet_output_size(w)
        for a, m in zip(alone, (reg_map, prob_map)):
            assert a.shape[1:3] == (oh, ow)
            np.testing.assert_allclose(m[:, y // 2:y // 2 + oh, x // 2:x // 2 + ow], a, atol=1e-5)


def _as_rows(found: list[dict]) -> np.ndarray:
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    return np.array([[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3],
                      *(f["keypoints"][n][0] for n in names), *(f["keypoints"][n][1] for n in names)]
                     for f in found], np.float64).reshape(-1, 14)


def test_every_demo_photo_gives_the_faces_mtcnn_gives(networks, reference, demo_photos):
    """All 118 demo photos: each face mtcnn 1.0 finds is found (IoU >= 0.9, landmarks within 2 px; mtcnn rounds
    both to whole pixels), and nothing else is."""
    from mien.pipeline.images import load_image
    from mien.pipeline.mtcnn_cascade import detect, overlap

    photos = sorted(p for root in demo_photos for p in root.rglob("*") if p.is_file())
    assert len(photos) >= 110
    faces = 0
    for path in photos:
        image = load_image(path)
        expected = _as_rows(reference.detect_faces(image))
        got = detect(networks, image)
        assert len(got) == len(expected), path.name
        if not len(got):
            continue
        iou = overlap(expected[:, :4], got[:, :4])
        match = iou.argmax(axis=1)
        assert len(set(match)) == len(match), path.name
        assert iou.max(axis=1).min() >= 0.9, path.name
        assert np.abs(got[match][:, 5:] - expected[:, 4:]).max() <= 2.0, path.name
        faces += len(got)
    assert faces >= len(photos)  # every demo photo shows at least one face


def test_detectors_agree_through_the_registry_and_thresholds_are_real(demo_photos):
    """Both registered backends give the same faces for the same settings, including a lowered last-stage
    threshold (mtcnn 1.0's own 0.8 cut made any lower one moot before); a proposal or refinement threshold
    no face can pass leaves nothing."""
    from mien.pipeline.detection import build_detector
    from mien.pipeline.images import load_image

    photo = load_image(sorted((demo_photos[1] / "elton_john").iterdir())[3])  # Elton John and a 0.43 candidate
    for threshold, count in ((0.8, 1), (0.4, 2)):
        fast = build_detector("mtcnn", threshold=threshold).detect(photo)
        keras = build_detector("mtcnn-keras", threshold=threshold).detect(photo)
        assert len(fast) == len(keras) == count
        for f, k in zip(fast, keras):
            assert np.abs(np.array(f.bbox) - np.array(k.bbox)).max() <= 2
            assert np.abs(f.landmark_array() - k.landmark_array()).max() <= 2.0
    assert build_detector("mtcnn", proposal_threshold=1.0).detect(photo) == []
    assert build_detector("mtcnn", refine_threshold=1.0).detect(photo) == []
    assert len(build_detector("mtcnn", proposal_threshold=0.3, refine_threshold=0.3).detect(photo)) >= 1
    assert build_detector("mtcnn").signature != build_detector("mtcnn", proposal_threshold=0.5).signature
