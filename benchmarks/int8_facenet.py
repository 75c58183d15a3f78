"""FaceNet in INT8 with accuracy control (issue 25): NNCF quantizes the converted FaceNet, reverting to floating point
whichever layers cost the most, until its embeddings stay within ``--max-drop`` of fp32's; then LFW and speed.

    python benchmarks/int8_facenet.py [--max-drop 0.0005] [--json FILE]      (needs `pip install nncf`)

Calibration: the demo enrollment photos' identity crops and their mirror images (training data only); the metric
NNCF controls: the mean cosine between the candidate's and the unquantized model's embeddings of the 25 held-out
demo photos and a third of the enrollment photos (never LFW, which is the test). Then, each against the product's
fp32 FaceNet in the same run: ms/face for a face and its mirror image (batches of 8, 2 threads, the product's
compile settings) and the LFW dev folds as `mien evaluate pairs` scores them (gate: within 0.1 point), with the
rest of the network in fp32 and in bf16. Run from a checkout after `make demo` (demo photos, converted FaceNet);
pause other work first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DATA = REPO.parent / "shared" / "data"


def identity_crops(rec, paths: list[Path]):
    """The identity crop (aligned, 160 px) of each photo's largest face, as recognition makes it."""
    import numpy as np

    from mien.pipeline.images import load_image

    crops = []
    for p in paths:
        image = load_image(p)
        faces = rec.detect(image)
        if faces:
            crops.append(rec.identity_crop(image, faces[0]))
    return np.stack(crops)


def network_inputs(crops) -> list:
    """FaceNet's input for each crop and its mirror image, one face per item (prewhitened float32 [1,160,160,3])."""
    import numpy as np

    from mien.identity.facenet_io import prewhiten

    both = np.concatenate([crops, crops[:, :, ::-1]])
    return [prewhiten(x[None]).astype(np.float32) for x in both]


def quantize(model, calibration: list, validation: list, max_drop: float):
    """NNCF's INT8 quantization with accuracy control over the mean embedding cosine to the unquantized model."""
    import nncf
    import numpy as np
    import openvino as ov

    def embed(compiled, items):
        out = np.concatenate([compiled(x)[0] for x in items])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    # the reference compiled as NNCF compiles its candidates (the CPU's default precision): like with like
    reference = embed(ov.Core().compile_model(model, "CPU"), validation)

    def mean_cosine(compiled, items) -> float:
        out = embed(compiled, items)  # the items NNCF passes: all of them, or the first of them while it ranks
        return float((out * reference[:len(out)]).sum(1).mean())

    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calibration), nncf.Dataset(validation), validation_fn=mean_cosine, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-drop", type=float, default=0.0005, help="largest drop of the mean cosine NNCF accepts")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np
    import openvino as ov

    from mien.pipeline import Recognizer
    from mien.pipeline.runtime import cache_dir, compile_model
    from mien.pipeline.verification import embed_subjects, pair_distances, read_lfw_pairs, score_pairs
    from workspace import median_ms

    rec = Recognizer(emotion=False, identity=False)
    enroll = identity_crops(rec, sorted((REPO / "enrollment_data").rglob("*.jpg")))
    held_out = identity_crops(rec, sorted((REPO / "demo_data" / "val").rglob("*.jpg")))
    fp32_forward = rec.embedder._forward
    model = ov.Core().read_model(next(cache_dir().glob("facenet-*/model.xml")))  # converted by the Recognizer
    start = time.time()
    quantized = quantize(model, network_inputs(enroll), network_inputs(np.concatenate([held_out, enroll[::3]])),
                         args.max_drop)
    report = {"max_drop": args.max_drop, "quantize_seconds": round(time.time() - start), "arms": {}}

    def forward_of(compiled):
        request, output = compiled.create_infer_request(), compiled.outputs[0]
        return lambda x: np.array(request.infer({0: np.ascontiguousarray(x, np.float32)})[output], copy=True)

    arms = {"fp32 (the product)": fp32_forward,
            "int8, the rest fp32": forward_of(compile_model(quantized, precision="fp32")),
            "int8, the rest bf16": forward_of(compile_model(quantized, precision="bf16"))}
    pairs = read_lfw_pairs(DATA / "lfw-dev" / "pairs.txt", DATA / "lfw-dev")
    blank = [np.random.default_rng(0).integers(0, 255, (160, 160, 3), np.uint8)] * 8
    reference = None
    for name, forward in arms.items():
        rec.embedder._forward = forward
        ms_per_face = median_ms(lambda: rec.embed_crops(blank), 20) / len(blank)
        emb = embed_subjects(pairs.images, rec)
        lfw = score_pairs(pair_distances(pairs, emb), pairs.same, pairs.fold, 1.10)
        arm = {"ms_per_face_with_mirror": round(ms_per_face, 2),
               "lfw_kfold": round(100 * lfw["kfold_accuracy"], 2),
               "lfw_at_verify_threshold": round(100 * lfw["accuracy_at_verify_threshold"], 2),
               "auc": round(lfw["auc"], 4)}
        if reference is None:
            reference = emb
        else:
            both = [k for k in reference if reference[k] is not None and emb.get(k) is not None]
            cos = np.array([float(reference[k] @ emb[k]) for k in both])
            arm.update(cosine_mean=round(float(cos.mean()), 4), cosine_min=round(float(cos.min()), 4),
                       lfw_points_vs_fp32=round(arm["lfw_kfold"] - report["arms"]["fp32 (the product)"]["lfw_kfold"], 2))
        report["arms"][name] = arm
        print(f"{name}: {arm}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
