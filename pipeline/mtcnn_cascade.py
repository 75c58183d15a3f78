"""MTCNN's cascade (Zhang et al. 2016) in NumPy around OpenVINO: the algorithm of ``mtcnn`` 1.0, run fast.

Same steps and constants as ``mtcnn`` 1.0's stages (pyramid with factor 0.709, P-Net proposals on a
stride-2 grid of 12 px cells, per-scale then global NMS, square boxes, bilinear patches at 24 and 48 px
sampled as ``tf.image.crop_and_resize`` does, box regression, landmarks, NMS by the smaller area last),
so boxes and landmarks agree with it; but every stage is a few vectorised NumPy operations and one
OpenVINO call (the whole pyramid on one canvas for P-Net), instead of eager TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mien.pipeline.mtcnn_graphs import Networks
from mien.pipeline.options import Options

SCALE_FACTOR = 0.709
CELL = 12  # P-Net's window
STRIDE = 2
NMS_CHUNK = 1024  # rows of the pairwise-overlap matrix computed at once (bounds memory on busy images)
# OpenVINO prepares kernels once per input shape (~3 ms each). The pyramid's canvas is padded up to multiples of
# LEVEL_BUCKET px and patch batches up to BATCH_BUCKETS, so a folder of photos of many sizes reuses a few shapes.
LEVEL_BUCKET = 16
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64)


@dataclass(frozen=True)
class StageThresholds:
    """Face-probability cut of each stage: P-Net proposals, R-Net refinement, O-Net output (defaults: Options')."""

    pnet: float = Options.proposal_threshold
    rnet: float = Options.refine_threshold
    onet: float = Options.detection_threshold


def pyramid_scales(height: int, width: int, min_face_size: int) -> list[float]:
    """Scales at which a face of ``min_face_size`` px and larger ones fill P-Net's 12 px window."""
    scale = CELL / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= CELL:
        scales.append(scale)
        scale *= SCALE_FACTOR
        side *= SCALE_FACTOR
    return scales


def overlap(boxes: np.ndarray, others: np.ndarray, by: str = "union") -> np.ndarray:
    """Pairwise overlap [len(boxes), len(others)] of (x1, y1, x2, y2) boxes: IoU, or intersection / smaller area."""
    area_a = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_b = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    w = np.maximum(0, np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0]))
    h = np.maximum(0, np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1]))
    inter = w * h
    if by == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    else:
        denom = np.minimum(area_a[:, None], area_b[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denom


def descending(scores: np.ndarray) -> np.ndarray:
    """Order by score, highest first, breaking ties as ``mtcnn`` 1.0 does (NumPy's default sort, reversed):
    strong faces saturate at probability 1.0, so the tie order decides which of two candidates survives NMS."""
    return np.argsort(scores)[::-1]


def suppress(rows: np.ndarray, threshold: float, by: str = "union", sort: bool = True) -> np.ndarray:
    """Non-maximum suppression as ``mtcnn`` 1.0 does it: a box goes when any higher-scored box overlaps it
    by more than ``threshold`` (rows are [x1, y1, x2, y2, score, ...]). Computed in row chunks."""
    if len(rows) == 0:
        return rows
    if sort:
        rows = rows[descending(rows[:, 4])]
    boxes = rows[:, :4]
    n = len(rows)
    dropped = np.zeros(n, bool)
    for start in range(0, n, NMS_CHUNK):
        block = overlap(boxes[start:start + NMS_CHUNK], boxes, by) > threshold
        ranks = np.arange(start, min(n, start + NMS_CHUNK))[:, None]
        block &= np.arange(n)[None, :] > ranks  # only higher-ranked boxes suppress lower-ranked ones
        dropped |= block.any(axis=0)
    return rows[~dropped]


def to_square(rows: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (side = the longer side)."""
    rows = rows.copy()
    w, h = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    side = np.maximum(w, h)
    rows[:, 0] += w * 0.5 - side * 0.5
    rows[:, 1] += h * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 0] + side
    rows[:, 3] = rows[:, 1] + side
    return rows


def regress(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply a stage's box regression (offsets in units of the box's size + 1)."""
    rows = rows.copy()
    w = rows[:, 2] - rows[:, 0] + 1
    h = rows[:, 3] - rows[:, 1] + 1
    rows[:, :4] += offsets * np.stack([w, h, w, h], axis=1)
    return rows


def crop_patches(image: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """Bilinear [N, size, size, 3] patches of the boxes, sampled exactly as ``tf.image.crop_and_resize`` does
    with the box normalised by the image size (``mtcnn`` 1.0's call); samples outside the image are 0."""
    height, width, channels = image.shape
    t = np.arange(size, dtype=np.float64) / (size - 1)

    def axis(lo: np.ndarray, hi: np.ndarray, extent: int):
        lo_n, hi_n = lo / extent, hi / extent
        pos = lo_n[:, None] * (extent - 1) + t[None, :] * ((hi_n - lo_n) * (extent - 1))[:, None]
        inside = (pos >= 0) & (pos <= extent - 1)
        pos = np.clip(pos, 0, extent - 1)
        first = np.floor(pos).astype(np.intp)
        second = np.minimum(first + 1, extent - 1)
        return first, second, (pos - first).astype(np.float32), inside

    y0, y1, fy, in_y = axis(rows[:, 1], rows[:, 3], height)
    x0, x1, fx, in_x = axis(rows[:, 0], rows[:, 2], width)
    flat = image.reshape(-1, channels)
    r0, r1 = (y0 * width)[:, :, None], (y1 * width)[:, :, None]
    c0, c1 = x0[:, None, :], x1[:, None, :]
    # np.take and in-place arithmetic: ~2.5x faster than fancy indexing and temporaries, the same float32 operations
    top, top_right = np.take(flat, r0 + c0, axis=0), np.take(flat, r0 + c1, axis=0)
    bottom, bottom_right = np.take(flat, r1 + c0, axis=0), np.take(flat, r1 + c1, axis=0)
    wx = fx[:, None, :, None]
    left = 1 - wx
    top *= left
    top_right *= wx
    top += top_right
    bottom *= left
    bottom_right *= wx
    bottom += bottom_right
    bottom -= top
    bottom *= fy[:, :, None, None]
    top += bottom
    top *= (in_y[:, :, None] & in_x[:, None, :])[..., None]
    return top


def bucket(n: int, step: int) -> int:
    return -(-n // step) * step


PADDING = -1e30  # added to P-Net's first feature map outside a level: never wins a max-pool


def pnet_output_size(side: int) -> int:
    """P-Net's output cells along a side of ``side`` px: conv 3, max-pool 2/2 (same), conv 3, conv 3."""
    return -(-(side - 2) // 2) - 4


def run_batched(net, patches: np.ndarray) -> list[np.ndarray]:
    """A patch network on a batch padded up to a bucket size (rows are independent, so padding changes nothing)."""
    n = len(patches)
    size = next((b for b in BATCH_BUCKETS if b >= n), bucket(n, BATCH_BUCKETS[-1]))
    if size > n:
        patches = np.concatenate([patches, np.zeros((size - n, *patches.shape[1:]), np.float32)])
    return [out[:n] for out in net(patches)]


def pack_levels(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Places pyramid levels of ``sizes`` (h, w) on one canvas: top-left corners (y, x), both even, and the canvas
    (h, w) in LEVEL_BUCKET multiples. Skyline packing, largest level first, lowest free spot: the canvas is as wide as
    the two largest levels side by side and holds all of them in ~1.15x their total area."""
    width = sizes[0][1] + (sizes[1][1] if len(sizes) > 1 else 0)
    width = bucket(width, 2)
    skyline = np.zeros(width, np.int64)  # the lowest free row of each canvas column
    corners = []
    for h, w in sizes:
        w2 = bucket(w, 2)
        tops = np.lib.stride_tricks.sliding_window_view(skyline, w2)[::2].max(axis=1)
        x = 2 * int(np.argmin(tops))
        y = bucket(int(tops[x // 2]), 2)
        skyline[x:x + w2] = y + h
        corners.append((y, x))
    return corners, (bucket(int(skyline.max()), LEVEL_BUCKET), bucket(width, LEVEL_BUCKET))


def mosaic(levels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The pyramid's levels on one canvas for a single P-Net call, the mask that makes each level pool as if run
    alone (0 over a level's first feature map, -1e30 elsewhere), and each level's corner. A P-Net output cell sees
    12 px of one level only: the -1e30 outside keeps a level's border cells exactly what they are alone, and the
    cells between levels are never read. One call instead of one per level: on photos of ~300 px the per-call
    cost of ~8 small inferences was most of P-Net's time."""
    corners, (height, width) = pack_levels([level.shape[:2] for level in levels])
    canvas = np.zeros((1, height, width, 3), np.float32)
    mask = np.full((1, 1, height - 2, width - 2), PADDING, np.float32)
    for (y, x), level in zip(corners, levels):
        h, w = level.shape[:2]
        canvas[0, y:y + h, x:x + w] = level
        mask[0, 0, y:y + h - 2, x:x + w - 2] = 0.0
    return canvas, mask, corners


def propose(nets: Networks, image: np.ndarray, min_face_size: int, threshold: float) -> np.ndarray:
    """P-Net over the pyramid (all levels in one call, ``mosaic``): candidate squares [x1, y1, x2, y2, score] in
    image pixels."""
    height, width = image.shape[:2]
    scales = pyramid_scales(height, width, min_face_size)
    if not scales:
        return np.empty((0, 5))
    # sizes truncated, as tf.image.resize is given them
    levels = [cv2.resize(image, (int(width * s), int(height * s)), interpolation=cv2.INTER_AREA) for s in scales]
    canvas, mask, corners = mosaic(levels)
    reg_map, prob_map = nets.pnet(canvas, mask)
    found = []
    for scale, level, (y, x) in zip(scales, levels, corners):
        h, w = level.shape[:2]
        oy, ox = y // 2, x // 2
        oh, ow = pnet_output_size(h), pnet_output_size(w)
        reg, prob = reg_map[0, oy:oy + oh, ox:ox + ow], prob_map[0, oy:oy + oh, ox:ox + ow, 1]
        ys, xs = np.nonzero(prob > threshold)
        if not len(ys):
            continue
        score = prob[ys, xs]
        order = descending(score)
        ys, xs, score = ys[order], xs[order], score[order]
        dx1, dy1, dx2, dy2 = reg[ys, xs].T
        left, top = xs * STRIDE + 1.0, ys * STRIDE + 1.0
        right, bottom = xs * STRIDE + float(CELL), ys * STRIDE + float(CELL)
        side = CELL - 1.0
        rows = np.stack([left + dx1 * side, top + dy1 * side, right + dx2 * side, bottom + dy2 * side, score], axis=1)
        rows[:, :4] /= scale
        found.append(suppress(rows, 0.5, sort=False))
    if not found:
        return np.empty((0, 5))
    return to_square(suppress(np.concatenate(found), 0.7))


def refine(nets: Networks, image: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
    """R-Net on 24 px patches of the candidates: rescored, regressed, filtered, squared."""
    if not len(rows):
        return rows
    reg, prob = run_batched(nets.rnet, crop_patches(image, rows, 24))
    rows = regress(np.concatenate([rows[:, :4], prob[:, 1:2]], axis=1), reg)
    rows = rows[rows[:, 4] > threshold]
    return to_square(suppress(rows, 0.7))


def finish(nets: Networks, image: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
    """O-Net on 48 px patches: final faces [x1, y1, x2, y2, score, 5 landmark x, 5 landmark y]."""
    if not len(rows):
        return np.empty((0, 15))
    reg, marks, prob = run_batched(nets.onet, crop_patches(image, rows, 48))
    w = rows[:, 2:3] - rows[:, 0:1] + 1
    h = rows[:, 3:4] - rows[:, 1:2] + 1
    marks = np.concatenate([w * marks[:, :5] + rows[:, 0:1] - 1, h * marks[:, 5:] + rows[:, 1:2] - 1], axis=1)
    rows = regress(np.concatenate([rows[:, :4], prob[:, 1:2]], axis=1), reg)
    rows = np.concatenate([rows, marks], axis=1)
    rows = rows[rows[:, 4] > threshold]
    return suppress(rows, 0.7, by="min")


def detect(nets: Networks, image: np.ndarray, min_face_size: int = Options.min_face_size,
           thresholds: StageThresholds = StageThresholds()) -> np.ndarray:
    """Faces in an RGB uint8 image as rows [x1, y1, x2, y2, score, lx1..lx5, ly1..ly5], boxes clipped to it."""
    normalized = (image.astype(np.float32) - 127.5) / 128.0
    rows = propose(nets, normalized, min_face_size, thresholds.pnet)
    rows = refine(nets, normalized, rows, thresholds.rnet)
    rows = finish(nets, normalized, rows, thresholds.onet)
    height, width = image.shape[:2]
    rows[:, [0, 2]] = np.clip(rows[:, [0, 2]], 0, width - 1)
    rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, height - 1)
    return rows
