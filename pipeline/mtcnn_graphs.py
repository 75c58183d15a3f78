"""MTCNN's three networks as OpenVINO models, built in memory from the weights inside the ``mtcnn`` package.

The ``mtcnn`` 1.0 networks are small Keras models (conv, PReLU, max-pool, dense, softmax). Declaring them
layer by layer with OpenVINO's graph API needs no converter and no TensorFlow, takes milliseconds, and the
compiled models run without the per-call overhead that dominates eager Keras on images this small.
Outputs match the Keras models to ~1e-6 (tests/test_detection_backends.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from mien.pipeline.assets import MTCNN_WEIGHTS_SHA256, mtcnn_weights

NETWORKS = ("pnet", "rnet", "onet")


def weights_sha256() -> str:
    """One digest over the three (verified) weight files: part of the detector's version string."""
    h = hashlib.sha256()
    for net in NETWORKS:
        h.update(MTCNN_WEIGHTS_SHA256[net].encode())
    return h.hexdigest()


class _GraphBuilder:
    """Appends OpenVINO nodes for Keras layers, consuming the network's weight arrays in their stored order.
    Input is NHWC like the Keras models; the graph works in NCHW inside."""

    def __init__(self, network: str, patch: int | None):
        import joblib
        import openvino.opset13 as ops

        self.ops = ops
        self._weights = list(joblib.load(mtcnn_weights(network)))
        self.inputs = [ops.parameter([-1, patch or -1, patch or -1, 3], np.float32, name="x")]
        self.x = ops.transpose(self.inputs[0], np.array([0, 3, 1, 2], np.int64))

    def _take(self) -> np.ndarray:
        return np.ascontiguousarray(self._weights.pop(0), np.float32)

    def conv(self, x):
        kernel, bias = self._take(), self._take()  # Keras HWIO -> OIHW
        y = self.ops.convolution(x, kernel.transpose(3, 2, 0, 1).copy(), [1, 1], [0, 0], [0, 0], [1, 1])
        return self.ops.add(y, bias.reshape(1, -1, 1, 1))

    def prelu(self, x, per_channel_map: bool = True):
        alpha = self._take()
        return self.ops.prelu(x, alpha.reshape(-1, 1, 1) if per_channel_map else alpha.reshape(-1))

    def max_pool(self, x, size: int, same: bool):
        # Keras "same" pads only after (bottom/right) when the padding is odd: SAME_UPPER
        return self.ops.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [size, size],
                                 auto_pad="same_upper" if same else "valid").output(0)

    def dense(self, x):
        kernel, bias = self._take(), self._take()
        return self.ops.add(self.ops.matmul(x, kernel, False, False), bias)

    def flatten_like_keras(self, x):
        """The Keras models permute to (W, H, C) before flattening (the weights come from Caffe's layout)."""
        x = self.ops.transpose(x, np.array([0, 3, 2, 1], np.int64))
        return self.ops.reshape(x, np.array([0, -1], np.int64), special_zero=True)

    def softmax(self, x):
        return self.ops.softmax(x, 1)

    def model(self, outputs: dict[str, object], layout_nhwc: tuple[str, ...] = ()):
        import openvino as ov

        if self._weights:
            raise ValueError(f"{len(self._weights)} weight arrays left unused: the mtcnn package's layout changed")
        results = []
        for name, node in outputs.items():
            if name in layout_nhwc:
                node = self.ops.transpose(node, np.array([0, 2, 3, 1], np.int64))
            result = self.ops.result(node)
            result.get_output_tensor(0).set_names({name})
            results.append(result)
        return ov.Model(results, self.inputs, "mtcnn")


def pnet_model():
    """P-Net, fully convolutional on [N,H,W,3]: box regression [N,h,w,4] and face probability [N,h,w,2].

    Its second input, an additive mask [1,1,H-2,W-2] (0 inside the real image, -1e30 over padding),
    is applied before the first max-pool: a level padded up to a bucket size then pools exactly like
    the unpadded one, whose "same" pooling pads with -inf."""
    g = _GraphBuilder("pnet", None)
    mask = g.ops.parameter([1, 1, -1, -1], np.float32, name="mask")
    g.inputs.append(mask)
    x = g.max_pool(g.ops.add(g.prelu(g.conv(g.x)), mask), 2, same=True)
    x = g.prelu(g.conv(x))
    x = g.prelu(g.conv(x))
    return g.model({"reg": g.conv(x), "prob": g.softmax(g.conv(x))}, layout_nhwc=("reg", "prob"))


def rnet_model():
    """R-Net on [N,24,24,3] patches: box regression [N,4] and face probability [N,2]."""
    g = _GraphBuilder("rnet", 24)
    x = g.max_pool(g.prelu(g.conv(g.x)), 3, same=True)
    x = g.max_pool(g.prelu(g.conv(x)), 3, same=False)
    x = g.prelu(g.conv(x))
    x = g.prelu(g.dense(g.flatten_like_keras(x)), per_channel_map=False)
    return g.model({"reg": g.dense(x), "prob": g.softmax(g.dense(x))})


def onet_model():
    """O-Net on [N,48,48,3] patches: box regression [N,4], landmarks [N,10] (x1..x5, y1..y5), probability [N,2]."""
    g = _GraphBuilder("onet", 48)
    x = g.max_pool(g.prelu(g.conv(g.x)), 3, same=True)
    x = g.max_pool(g.prelu(g.conv(x)), 3, same=False)
    x = g.max_pool(g.prelu(g.conv(x)), 2, same=True)
    x = g.prelu(g.conv(x))
    x = g.prelu(g.dense(g.flatten_like_keras(x)), per_channel_map=False)
    return g.model({"reg": g.dense(x), "landmarks": g.dense(x), "prob": g.softmax(g.dense(x))})


class Network:
    """One compiled network: ``net(batch)`` → its outputs as NumPy arrays, in declaration order."""

    def __init__(self, compiled):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._outputs = list(compiled.outputs)

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        result = self._request.infer({i: np.ascontiguousarray(x, np.float32) for i, x in enumerate(inputs)})
        return [result[o] for o in self._outputs]


@dataclass
class Networks:
    """P-Net, R-Net and O-Net of one detector (not thread-safe: one infer request each)."""

    pnet: Network
    rnet: Network
    onet: Network


def compile_networks(threads: int | None = None, precision: str = "fp32") -> Networks:
    """Build and compile the three networks for this CPU in ``precision`` (tens of milliseconds; nothing is written
    to disk)."""
    from mien.pipeline.runtime import compile_model

    return Networks(*(Network(compile_model(build(), threads, precision))
                      for build in (pnet_model, rnet_model, onet_model)))
