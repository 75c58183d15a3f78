"""Test-time views: which shifted / mirrored copies of a face the emotion model averages (stored in model.json).

Averaging the network's probabilities over a few views of each face is the cheapest accuracy there is: on
FER2013 PublicTest, 3-pixel shifts four ways, each with its mirror image, gained 1.3 points over the mirror
alone for 5x the passes (``benchmarks/emotion_tta.py``). No TensorFlow needed to read these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

Shift = tuple[int, int]
MAX_SHIFT = 8  # pixels at 48 px; more would move the face's features out of the frame the model learnt


@dataclasses.dataclass(frozen=True)
class TestTimeViews:
    """Integer pixel shifts (dx right, dy down; edges replicated) of each face, each also mirrored if ``mirror``."""

    __test__ = False  # not a pytest class, despite the name

    shifts: tuple[Shift, ...] = ((0, 0),)
    mirror: bool = True

    def __post_init__(self) -> None:
        if not self.shifts:
            raise ValueError("test-time views need at least one shift (use [[0, 0]] for the face as it is)")
        if len(set(self.shifts)) != len(self.shifts):
            raise ValueError(f"repeated test-time shifts: {list(self.shifts)}")
        for dx, dy in self.shifts:
            if max(abs(dx), abs(dy)) > MAX_SHIFT:
                raise ValueError(f"test-time shift ({dx}, {dy}) is over {MAX_SHIFT} pixels")

    @property
    def passes(self) -> int:
        """Network passes per face (the cost multiplier of emotion inference)."""
        return len(self.shifts) * (2 if self.mirror else 1)

    @property
    def cache_name(self) -> str:
        """Stable name of the forward graph these views build (keys converted models of other runtimes)."""
        if self == MIRROR:
            return "emotion-tta1"
        if self == NONE:
            return "emotion-tta0"
        return "emotion-views-" + self._digest()

    @property
    def tag(self) -> str:
        """Short name for versions and logs: the preset's name (e.g. ``mirror+shift3``), else a content hash."""
        for name, views in PRESETS.items():
            if views == self:
                return name
        return "views-" + self._digest()

    def _digest(self) -> str:
        """Short content hash of the views, as model.json states them."""
        return hashlib.sha256(json.dumps(self.to_meta()).encode()).hexdigest()[:10]

    def to_meta(self) -> Any:
        """model.json's ``tta`` value: true / false for the mirror alone / nothing (as older files say), else a dict."""
        if self.shifts == ((0, 0),):
            return self.mirror
        return {"mirror": self.mirror, "shifts": [list(s) for s in self.shifts]}

    @classmethod
    def from_meta(cls, value: Any) -> "TestTimeViews":
        """Parse model.json's ``tta``: a bool (mirror or nothing) or {"mirror": bool, "shifts": [[dx, dy], ...]}."""
        if isinstance(value, bool):
            return cls(mirror=value)
        if not isinstance(value, dict) or set(value) - {"mirror", "shifts"}:
            raise ValueError(f"tta must be true, false or {{'mirror': bool, 'shifts': [[dx, dy], ...]}}, got {value!r}")
        try:
            shifts = tuple((int(dx), int(dy)) for dx, dy in value.get("shifts", [[0, 0]]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tta shifts must be [[dx, dy], ...] pixel pairs, got {value.get('shifts')!r}") from exc
        return cls(shifts=shifts, mirror=bool(value.get("mirror", True)))


NONE = TestTimeViews(mirror=False)
MIRROR = TestTimeViews()
SHIFT3_FOUR_WAYS = TestTimeViews(shifts=((0, 0), (3, 0), (-3, 0), (0, 3), (0, -3)))

# `mien export emotion --views NAME` (default: DEFAULT_PRESET, chosen on PublicTest for a single network) and
# `--emotion-views`. What ships is what each model.json says: the shipped ensemble's members are mirror only
# (`"tta": true`), as shift views gave the ensemble no gain for 5x the passes; recognition follows model.json.
PRESETS: dict[str, TestTimeViews] = {"none": NONE, "mirror": MIRROR, "mirror+shift3": SHIFT3_FOUR_WAYS}
DEFAULT_PRESET = "mirror+shift3"


# Chosen on FER2013 PublicTest with the shipped ensemble (docs/results.md, "Mirror when unsure"): at this margin
# the mirror changed no face's emotion there, and 35 % of the faces needed it.
UNSURE_MARGIN = 0.3


class MirrorWhenUnsure:
    """An emotion model whose own views are the face and its mirror image, run on the face alone first and on its
    mirror image too only where the answer is unsure: the two most probable emotions within ``margin`` of each
    other, or the most probable within ``margin / 2`` of the 'uncertain' threshold asked for. Those faces get the
    mean of both views, exactly what the model gives with its mirror view; the others their single view's."""

    def __init__(self, single_view_model, margin: float = UNSURE_MARGIN):
        self.model = single_view_model  # the same network(s) loaded with NONE views
        self.margin = margin
        self.labels, self.label_set = single_view_model.labels, single_view_model.label_set
        self.views = MIRROR  # at most; ``passes`` says so
        self.version = f"{single_view_model.version}-mirror-if-unsure{margin:g}"

    def __getattr__(self, name: str):
        return getattr(self.model, name)  # config, members, input_size, ... of the model itself

    @property
    def passes(self) -> int:
        """Network passes per face at most (an unsure face's two views)."""
        return 2 * getattr(self.model, "passes", self.model.views.passes)

    def unsure(self, probs: np.ndarray, threshold: float = 0.0) -> np.ndarray:
        """Rows whose answer the mirror image could change (see the class)."""
        top = np.sort(probs, axis=1)[:, -2:]
        near = (top[:, 1] - top[:, 0]) < self.margin
        if threshold > 0:
            near |= np.abs(top[:, 1] - threshold) < self.margin / 2
        return near

    def predict(self, faces: np.ndarray, threshold: float = 0.0) -> np.ndarray:
        """Probabilities float32 [N,len(labels)] for grayscale 48x48 faces, the mirror seen where ``unsure``."""
        faces = np.asarray(faces)
        probs = np.array(self.model.predict(faces), dtype=np.float32)  # a copy: rows are replaced below
        again = np.flatnonzero(self.unsure(probs, threshold))
        if len(again):
            probs[again] = (probs[again] + self.model.predict(faces[again][:, :, ::-1])) / 2
        return probs

    def __repr__(self) -> str:
        return f"MirrorWhenUnsure({self.model!r}, margin={self.margin:g})"
