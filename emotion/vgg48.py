"""A compact VGG-style trunk made for 48 px faces: full resolution through its first stage (no stem stride).

Every FER2013 result at or above 73 % from scratch keeps 40-48 px through stage 1 (VGG variants, ResNet18 with a
3x3 stride-1 stem), while the VGGFace ResNet50 stem brings 48 px down to 12 px first. Four stages of two
3x3 conv + BN + ReLU at 48, 24, 12 and 6 px, each closed by a 2x2 max-pool; ~0.14 GMAC and 1.2 M weights a face.
"""

from __future__ import annotations

from keras import layers

# (stage, filters) of the four stages; each halves the resolution at its end.
VGG48_STAGES: tuple[tuple[int, int], ...] = ((1, 32), (2, 64), (3, 128), (4, 256))
CONVS_PER_STAGE = 2


def vgg48_features(x):
    """Apply the vgg48 trunk to ``x`` ([N,48,48,C]) -> [N,3,3,256] feature maps."""
    for stage, filters in VGG48_STAGES:
        for conv in range(1, CONVS_PER_STAGE + 1):
            name = f"vgg48_s{stage}c{conv}"
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
            x = layers.BatchNormalization(name=name + "_bn")(x)
            x = layers.Activation("relu", name=name + "_relu")(x)
        x = layers.MaxPooling2D(2, name=f"vgg48_s{stage}_pool")(x)
    return x
