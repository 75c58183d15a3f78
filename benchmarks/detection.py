"""MTCNN detection: the OpenVINO backend against ``mtcnn`` 1.0's own ``detect_faces``, measured in the same run.

    python benchmarks/detection.py [--threads N] [--json FILE]

On every demo photo (held-out + enrollment): ms/photo of each backend cold (first photo of each size: the
OpenVINO backend prepares kernels per input shape) and warm, the ratio (goal >= 3x), agreement (each face of
mtcnn 1.0 found with box IoU >= 0.9 and landmarks within 2 px, no extra face), and frames/s at 640x480.
Then who + emotion end to end on the held-out photos through a Recognizer with each detector
(goal: <= 0.5x of the time with mtcnn 1.0). Nothing else should run on the machine meanwhile.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def reference_rows(found: list[dict]):
    import numpy as np

    return np.array([[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3],
                      *(f["keypoints"][n][0] for n in LANDMARKS), *(f["keypoints"][n][1] for n in LANDMARKS)]
                     for f in found], np.float64).reshape(-1, 14)


def per_photo_ms(fn, images) -> tuple[float, list]:
    out, t = [], time.perf_counter()
    for img in images:
        out.append(fn(img))
    return 1000 * (time.perf_counter() - t) / len(images), out


def agreement(expected: list, got: list) -> dict:
    """Faces of the reference matched by the fast backend (IoU >= 0.9), worst IoU and landmark error, extras."""
    import numpy as np

    from mien.pipeline.mtcnn_cascade import overlap

    ref_faces = fast_faces = matched = extra = 0
    worst_iou, worst_px = 1.0, 0.0
    for e, g in zip(expected, got):
        ref_faces += len(e)
        fast_faces += len(g)
        if not len(e) or not len(g):
            extra += len(g)
            continue
        iou = overlap(e[:, :4], g[:, :4])
        best = iou.max(axis=1)
        matched += int((best >= 0.9).sum())
        extra += int((iou.max(axis=0) < 0.9).sum())
        worst_iou = min(worst_iou, float(best.min()))
        worst_px = max(worst_px, float(np.abs(g[iou.argmax(axis=1)][:, 5:] - e[:, 4:]).max()))
    return {"reference_faces": ref_faces, "fast_faces": fast_faces, "matched": matched, "extra": extra,
            "worst_iou": worst_iou, "worst_landmark_px": worst_px}


def recognize_ms(detector: str, images: list, names: list[str]) -> tuple[float, list]:
    """Warm ms/photo of who + emotion through a Recognizer using ``detector``, and the (name, emotion) answers."""
    from mien.pipeline import Options, Recognizer

    rec = Recognizer(Options(detector=detector))
    rec.recognize_batch(images[:2], names[:2])  # warm-up
    t = time.perf_counter()
    records = [rec.recognize(img, n) for img, n in zip(images, names)]
    ms = 1000 * (time.perf_counter() - t) / len(images)
    answers = [[(f.identity.name if f.identity else None, f.emotion.label if f.emotion else None) for f in r.faces]
               for r in records]
    return ms, answers


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="OpenVINO threads (default: CPUs, at most 4)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import cv2

    from workspace import demo_workspace, finish

    work, train, val = demo_workspace()
    from mtcnn import MTCNN

    from mien.pipeline.enroll import enroll_folder
    from mien.pipeline.images import load_image
    from mien.pipeline.mtcnn_cascade import detect
    from mien.pipeline.mtcnn_graphs import compile_networks
    from mien.pipeline.runtime import default_threads

    paths = sorted(val.rglob("*.jpg")) + sorted(train.rglob("*.jpg"))
    images = [load_image(p) for p in paths]
    reference = MTCNN(device="CPU:0")
    nets = compile_networks(args.threads)
    r: dict = {"photos": len(images), "distinct_sizes": len({im.shape for im in images}),
               "threads": args.threads or default_threads(), "cpus": os.cpu_count()}

    fast = lambda img: detect(nets, img)  # noqa: E731
    r["openvino_cold_ms"], _ = per_photo_ms(fast, images)
    reference.detect_faces(images[0])
    r["reference_cold_ms"], _ = per_photo_ms(reference.detect_faces, images)
    r["reference_ms"], found = per_photo_ms(reference.detect_faces, images)
    r["openvino_ms"], got = per_photo_ms(fast, images)
    r["speedup_warm"] = r["reference_ms"] / r["openvino_ms"]
    r["speedup_cold"] = r["reference_cold_ms"] / r["openvino_cold_ms"]
    r["agreement"] = agreement([reference_rows(f) for f in found], got)

    frame = cv2.resize(images[0], (640, 480), interpolation=cv2.INTER_LINEAR)
    for name, fn in (("reference", reference.detect_faces), ("openvino", fast)):
        fn(frame)
        ms, _ = per_photo_ms(fn, [frame] * 20)
        r[f"{name}_640x480_fps"] = 1000 / ms

    # who + emotion end to end, each detector in its own Recognizer (same gallery, same photos)
    from mien.pipeline import Recognizer

    enroll_folder(train, Recognizer(emotion=False))
    val_paths = sorted(val.rglob("*.jpg"))
    val_images, names = [load_image(p) for p in val_paths], [p.name for p in val_paths]
    r["recognize_reference_ms"], answers_ref = recognize_ms("mtcnn-keras", val_images, names)
    r["recognize_openvino_ms"], answers_fast = recognize_ms("mtcnn", val_images, names)
    r["recognize_ratio"] = r["recognize_openvino_ms"] / r["recognize_reference_ms"]
    r["recognize_same_answers"] = answers_ref == answers_fast
    r["recognize_differences"] = [f"{n}: {a} vs {b}" for n, a, b in zip(names, answers_ref, answers_fast) if a != b]

    a = r["agreement"]
    print(f"{r['photos']} demo photos ({r['distinct_sizes']} sizes), OpenVINO threads {r['threads']}")
    print(f"detection ms/photo   mtcnn 1.0: {r['reference_ms']:.1f} warm, {r['reference_cold_ms']:.1f} cold | "
          f"OpenVINO: {r['openvino_ms']:.1f} warm, {r['openvino_cold_ms']:.1f} cold | "
          f"x{r['speedup_warm']:.1f} warm, x{r['speedup_cold']:.1f} cold (goal >= 3)")
    print(f"agreement: {a['matched']}/{a['reference_faces']} faces matched (IoU >= 0.9), {a['extra']} extra, "
          f"worst IoU {a['worst_iou']:.3f}, worst landmark {a['worst_landmark_px']:.2f} px")
    print(f"640x480 detection: mtcnn 1.0 {r['reference_640x480_fps']:.1f} fps, OpenVINO {r['openvino_640x480_fps']:.1f} fps")
    print(f"who + emotion ms/photo ({len(val_images)} held-out): mtcnn 1.0 {r['recognize_reference_ms']:.1f}, "
          f"OpenVINO {r['recognize_openvino_ms']:.1f} = {r['recognize_ratio']:.2f}x (goal <= 0.5); "
          f"same names and emotions: {r['recognize_same_answers']}")
    for d in r["recognize_differences"]:
        print("  differs (mtcnn 1.0 vs OpenVINO):", d)
    return finish(work, r, args.json)


if __name__ == "__main__":
    main()
