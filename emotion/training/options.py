"""Command-line options of emotion training and export, kept free of TensorFlow so `mien --help` stays instant."""
from __future__ import annotations

import argparse
import os

from mien.emotion.config import ARCHITECTURES
from mien.emotion.views import DEFAULT_PRESET, PRESETS

# FER2013's usage splits (also emotion.training.data.SPLITS).
SPLITS = ("Training", "PublicTest", "PrivateTest")

# Per-optimizer defaults: peak learning rate at batch 128 and decoupled weight decay.
OPTIMIZERS: dict[str, dict[str, float]] = {"sgd": {"lr": 0.05, "weight_decay": 5e-4},
                                           "adamw": {"lr": 1e-3, "weight_decay": 0.05}}
# Augmentation presets (AugmentConfig fields): "light" is a random 44-of-48 px crop (as a shift) + flip;
# "strong" adds rotation, zoom and gamma (the earlier default).
AUGMENT_PRESETS: dict[str, dict[str, float]] = {
    "light": {"max_rotation_deg": 0.0, "max_shift": 4 / 48, "max_zoom": 0.0, "max_log_gamma": 0.0},
    "strong": {},
}


def dataset_path(text: str) -> str:
    """Argument type: an existing dataset file or folder (argparse turns the error into a usage message)."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such dataset file or folder")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `mien train emotion` (and `python -m mien.emotion.training.train`); finish with finish_args()."""
    p.add_argument("--data", required=True, type=dataset_path,
                   help="fer2013.npz, Kaggle fer2013.csv, or image folder (train/<emotion>/...)")
    p.add_argument("--out", default="models/emotion/checkpoints/run", help="run directory (checkpoints, metrics)")
    p.add_argument("--epochs", type=int, default=60, help="length of the run (and of the cosine, without cycles)")
    p.add_argument("--cycle-epochs", type=int, default=0,
                   help="cosine cycles of N epochs with warm restarts (0: one cosine over --epochs)")
    p.add_argument("--batch-size", type=int, default=128, help="faces per step")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                   help="sgd: Nesterov momentum (fits FER2013 faster than AdamW from scratch); adamw")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: sgd 0.05, adamw 1e-3)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="decoupled weight decay (x lr), not on BN/bias (default: sgd 5e-4, adamw 0.05)")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up before the cosine decay")
    p.add_argument("--bn-recalibration-batches", type=int, default=30,
                   help="before each evaluation, re-estimate BatchNorm statistics on N clean batches of 256 training "
                        "faces with dropout off (precise BN; 0: off)")
    p.add_argument("--clipnorm", type=float, default=5.0,
                   help="clip the global gradient norm (0: off); a guard against one bad batch wrecking a run")
    p.add_argument("--augment", choices=sorted(AUGMENT_PRESETS), default="light",
                   help="light: flip + 4 px shift (fit first); strong: + rotation, zoom, gamma")
    p.add_argument("--random-erasing", type=float, default=0.0, metavar="P",
                   help="with probability P fill a random 2-33%% rectangle of each training face with noise (0: off)")
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                   help="blend each training face and its target with another's, lambda ~ Beta(ALPHA, ALPHA) (0: off)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="evaluate, select and export an exponential moving average of the weights with this decay "
                        "per step (e.g. 0.999; 0: off); the average is saved with the optimizer")
    p.add_argument("--no-class-weights", action="store_true", help="plain loss instead of sqrt class weights")
    p.add_argument("--init-from", default=None,
                   help="start from an exported model directory (e.g. models/emotion); if it has train_state.json "
                        "(written by export) its epoch counter, schedule and history continue")
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile the train step (measured 2.9x slower)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="cross-entropy label smoothing")
    p.add_argument("--ferplus", default=None, type=dataset_path,
                   help="fer2013new.csv: mix the FER+ annotators' votes into the targets of Training faces")
    p.add_argument("--ferplus-weight", type=float, default=0.3,
                   help="with --ferplus: targets = (1 - w) x FER2013 label + w x FER+ vote shares")
    p.add_argument("--labels", choices=("fer2013", "ferplus"), default="fer2013",
                   help="the label set learnt: FER2013's 7 emotions, or FER+'s 8 (contempt added; needs --ferplus) on "
                        "the faces whose FER+ majority is one of them, every split (start it from a 7-class export with "
                        "--init-from: all but the classifier's contempt column is carried over)")
    p.add_argument("--ferplus-target", choices=("majority", "probability"), default="majority",
                   help="with --labels ferplus: train on each face's majority emotion (one-hot) or on its annotators' "
                        "vote shares (the FER+ paper's probability scheme); both are scored on majority labels")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="run an Optuna study of N trials over the recipe (learning rate, weight decay, label smoothing, "
                        "dropout, augmentation, mixup, random erasing), each trial a run of --epochs in OUT/trials/; "
                        "the same command adds N more trials (pip install 'mien[tune]')")
    p.add_argument("--study-storage", default=None,
                   help="with --tune: the Optuna storage URL (default: sqlite:///OUT/study.sqlite3)")
    p.add_argument("--teacher", default=None,
                   help="distil: also learn this model's softened probabilities of the Training faces (an exported "
                        "weights file or an ensemble's model.json; computed once, cached in the run folder)")
    p.add_argument("--kd-weight", type=float, default=0.5,
                   help="with --teacher: loss = (1 - w) x CE(label) + w x T^2 x CE(teacher's softened distribution)")
    p.add_argument("--temperature", type=float, default=3.0, help="with --teacher: the softening temperature T")
    p.add_argument("--arch", choices=ARCHITECTURES, default="resnet50",
                   help="the trunk: resnet50 (the design's VGGFace layout), vgg48 (a compact CNN that keeps 48 px "
                        "through its first stage, the diverse second network of the ensemble) or facenet (FaceNet's "
                        "InceptionResNetV1 from its face-recognition weights, --backbone-weights)")
    p.add_argument("--upscale-to", type=int, default=None, metavar="PX",
                   help="resize the 48 px face to PX in the graph before the trunk (default: facenet 112, else none)")
    p.add_argument("--layer-decay", type=float, default=1.0,
                   help="layer-wise rates of a pretrained trunk: a block k levels below the head learns at lr x D^k "
                        "(1: every layer at lr)")
    p.add_argument("--freeze-epochs", type=float, default=0.0,
                   help="head first: a pretrained trunk learns nothing for this many epochs, then follows the schedule")
    p.add_argument("--head-units", default="512,256,128", help="comma-separated widths of the 3 Dense+ReLU layers")
    p.add_argument("--dropout", type=float, default=0.3, help="dropout after each head layer")
    p.add_argument("--no-stem-pool", action="store_true",
                   help="drop the stem's 3x3/2 max-pool: 2x larger feature maps, ~3.5x the compute; the weights of a "
                        "model with it load unchanged (--init-from)")
    p.add_argument("--patience", type=int, default=6, help="early stopping: epochs without PublicTest gain")
    p.add_argument("--seed", type=int, default=1234, help="seed of shuffling, augmentation and initialisation")
    p.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                   help="compute dtype while training (float32 measured 15%% faster than bf16 on 2-core AVX-512 CPUs)")
    p.add_argument("--ckpt-every", type=int, default=50, help="also checkpoint every N steps inside an epoch")
    p.add_argument("--backbone-weights", default=None,
                   help="pretrained trunk to start from: a Keras-2 VGGFace notop ResNet50 .h5 (resnet50) or FaceNet's "
                        "facenet_keras.h5 (facenet; `mien train emotion` finds the one `mien models fetch` keeps)")
    p.add_argument("--no-tta", action="store_true", help="evaluate without horizontal-flip averaging")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N Training faces (tests)")
    p.add_argument("--limit-eval", type=int, default=0, help="use only the first N PublicTest/PrivateTest faces (tests)")
    p.add_argument("--log-every", type=int, default=20, help="progress line every N steps")
    p.add_argument("--run-eagerly", action="store_true",
                   help="no graph compilation (debugging; tiny runs: skips a ~1-2 min trace, much slower per step)")
    p.add_argument("--stop-after-steps", type=int, default=0,
                   help="checkpoint and exit after N training steps in this invocation (bounded sessions, tests)")


def trainer_options(args: argparse.Namespace) -> dict:
    """The training options in ``args`` (without whatever else a caller's parser put there), JSON-ready."""
    probe = argparse.ArgumentParser(add_help=False)
    add_arguments(probe)
    names = {a.dest for a in probe._actions}
    return {k: v for k, v in vars(args).items() if k in names}


# The input size a pretrained trunk sees by default (--upscale-to): FaceNet's measured choice (docs/training.md).
UPSCALE_DEFAULTS: dict[str, int] = {"facenet": 112}


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the per-optimizer and per-architecture defaults left unset on the command line."""
    if args.upscale_to is None:
        args.upscale_to = UPSCALE_DEFAULTS.get(args.arch, 0)
    defaults = OPTIMIZERS[args.optimizer]
    args.lr = defaults["lr"] if args.lr is None else args.lr
    args.weight_decay = defaults["weight_decay"] if args.weight_decay is None else args.weight_decay
    return args


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `mien export emotion` (and `python -m mien.emotion.training.export`)."""
    p.add_argument("run_dir", help="a training run directory (holds best.weights.h5, metrics.json, ckpt/)")
    p.add_argument("--dest", default="models/emotion", help="where the shipped model lives")
    p.add_argument("--data", default=None, help="dataset path (default: the one recorded by the run)")
    p.add_argument("--force", action="store_true", help="export even if not better than the shipped model")
    p.add_argument("--views", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help="test-time views the product averages per face: none, the mirror image, or 3-pixel shifts "
                        "four ways each with its mirror (10 passes; +1.3 points PublicTest over the mirror alone)")
    p.add_argument("--limit-eval", type=int, default=0, help=argparse.SUPPRESS)


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `mien evaluate emotion` (and `python -m mien.emotion.training.evaluate`)."""
    p.add_argument("--data", required=True, type=dataset_path, help="fer2013.npz, fer2013.csv or an image-folder dataset")
    p.add_argument("--split", choices=SPLITS, default="PrivateTest", help="which FER2013 split")
    p.add_argument("--limit", type=int, default=0, help="evaluate a fixed random sample of N faces (seed 0); 0 = all")
    p.add_argument("--weights", default=None, help="emotion weights file (default: the shipped model)")
    p.add_argument("--json", help="write the full result here")
    p.add_argument("--confusion", help="write the confusion matrix PNG here")
    p.add_argument("--labels", choices=("fer2013", "ferplus"), default="fer2013",
                   help="ferplus: score against the FER+ annotators' majority label (faces whose majority is "
                        "contempt, unknown, not-a-face or a tie left out), which needs --ferplus")
    p.add_argument("--ferplus", default=None, type=dataset_path, help="fer2013new.csv (the FER+ votes)")
