"""Knowledge distillation (Hinton et al. 2015): a student network learns the teacher's softened probabilities
beside the labels, so one network can carry most of what an ensemble of diverse networks knows, at one network's
cost per face.

The teacher (an exported model or an ensemble's model.json) is run once over the Training faces, as the product
runs it (its test-time views, no training augmentation); its probabilities are cached in the run folder with the
teacher's version and the data's sha256, so a resumed run trains on exactly the same targets. Test faces are never
given to the teacher.

Loss per face: ``(1 - a) * CE(label, student) + a * T^2 * CE(teacher^(1/T), softmax(log student / T))``, where
``teacher^(1/T)`` is the teacher's distribution softened by the temperature T (renormalised) and the student's
probabilities are softened alike (dividing log-probabilities by T equals dividing its logits by T).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mien.emotion.errors import TrainingError
from mien.emotion.labels import NUM_CLASSES

TEACHER_CACHE = "teacher_targets.npz"


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """A distribution softened by ``temperature``: p^(1/T) renormalised (softmax of logits / T)."""
    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def load_teacher(path: str | Path):
    """The teacher: an ensemble's model.json or one exported network's weights file, run by TensorFlow here."""
    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.ensemble import EmotionEnsemble, is_ensemble

    return EmotionEnsemble.load(path) if is_ensemble(path) else EmotionClassifier.load(path)


def teacher_probabilities(run: Path, teacher_path: str, faces: np.ndarray, data_sha256: str,
                          log=print) -> tuple[np.ndarray, str]:
    """The teacher's probabilities [N,7] for ``faces`` (Training faces only) and the teacher's version; computed
    once and cached in ``run`` (refused if the cache was made by another teacher or from other data)."""
    cache = run / TEACHER_CACHE
    if cache.is_file():
        with np.load(cache) as d:
            meta = json.loads(str(d["meta"]))
            probs = d["probs"]
        if meta["data_sha256"] != data_sha256 or len(probs) != len(faces):
            raise TrainingError(f"{cache}: made from other data ({meta['data_sha256'][:12]}, {len(probs)} faces); "
                                "delete it to compute the teacher's targets again")
        if meta["teacher_path"] != str(teacher_path):
            raise TrainingError(f"{cache}: made by the teacher {meta['teacher_path']}, not {teacher_path}; a run "
                                "keeps its teacher (start another --out for another one)")
        return probs, meta["teacher_version"]
    teacher = load_teacher(teacher_path)
    log(f"teacher {teacher.version}: predicting {len(faces)} Training faces (once; cached in {cache.name})")
    probs = np.concatenate([teacher.predict(faces[i:i + 256]) for i in range(0, len(faces), 256)])
    meta = {"teacher_path": str(teacher_path), "teacher_version": teacher.version, "data_sha256": data_sha256}
    tmp = run / (TEACHER_CACHE + ".tmp.npz")
    np.savez(tmp, probs=probs.astype(np.float32), meta=json.dumps(meta))
    tmp.replace(cache)
    return probs, teacher.version


def distillation_targets(label_targets: np.ndarray, teacher_probs: np.ndarray, temperature: float) -> np.ndarray:
    """[N,14] training targets: the label distribution (7) then the teacher's softened distribution (7), so one
    tensor carries both through batching, augmentation and mixup (which blends both halves alike)."""
    return np.concatenate([label_targets, soften(teacher_probs, temperature)], axis=1).astype(np.float32)


def make_loss(weight: float, temperature: float, label_smoothing: float):
    """The per-face distillation loss over [N,14] targets (see the module docstring)."""
    import keras
    from keras import ops

    def distillation_loss(y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        hard, soft = y_true[:, :NUM_CLASSES], y_true[:, NUM_CLASSES:]
        ce = keras.losses.categorical_crossentropy(hard, y_pred, label_smoothing=label_smoothing)
        student_t = ops.log_softmax(ops.log(ops.clip(y_pred, 1e-7, 1.0)) / temperature, axis=-1)
        kd = -ops.sum(soft * student_t, axis=-1) * (temperature ** 2)
        return (1.0 - weight) * ce + weight * kd

    return distillation_loss


def label_accuracy(y_true, y_pred):
    """Accuracy against the label half of [N,14] distillation targets (named ``acc`` like the plain metric)."""
    import keras

    return keras.metrics.categorical_accuracy(y_true[:, :NUM_CLASSES], y_pred)
