"""How a detected face becomes each branch's input (one detection, two crops)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mien.pipeline import alignment
from mien.pipeline.detection import Face


@dataclass(frozen=True)
class IdentityCrop:
    """160x160 RGB for FaceNet; ``method`` is 'align' (5-point similarity) or 'crop' (box + margin)."""

    size: int = 160
    method: str = "crop"
    margin: float = 0.2
    zoom: float = 1.0

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        if self.method == "align":
            return alignment.align(image, face, self.size, zoom=self.zoom)
        return alignment.crop(image, face, self.size, margin=self.margin)

    @property
    def signature(self) -> str:
        return f"{self.method}-{self.size}-m{self.margin}-z{self.zoom}"


@dataclass(frozen=True)
class EmotionCrop:
    """48x48 grayscale in FER2013's framing: a tight upright square around the detection box."""

    size: int = 48
    margin: float = 0.0

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        return alignment.to_gray(alignment.square_crop(image, face, self.size, margin=self.margin))
