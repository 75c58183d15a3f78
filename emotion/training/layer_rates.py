"""Fine-tuning a pretrained trunk: layer-wise learning rates and a head-first stage, as a pure function of the step.

A face network fine-tuned for expressions keeps what it learned where it is general (the stem, the early blocks)
and changes most near the head: block ``k`` levels below the head learns at ``lr x decay**k``, and for the first
``freeze_steps`` steps only the new head learns (the trunk's rate is 0, its weight decay too), so a randomly
initialised head cannot wreck the pretrained features before it fits them. Both depend on the step alone, so a
resumed or continued run follows the same schedule; the optimizer's variables are those of the plain optimizer.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf


def variable_scales(model: keras.Model, block_of: Callable[[str], int | None], n_blocks: int,
                    decay: float) -> dict[int, float]:
    """{id(variable): rate multiplier} for every trainable variable of the trunk (the head's are 1, left out)."""
    scales: dict[int, float] = {}
    for layer in model.layers:
        block = block_of(layer.name)
        if block is None:
            continue
        for var in layer.trainable_weights:
            scales[id(var)] = float(decay ** (n_blocks - block))
    return scales


def with_layer_rates(optimizer_class: type[keras.optimizers.Optimizer]) -> type[keras.optimizers.Optimizer]:
    """A subclass of ``optimizer_class`` whose per-variable rate (and decoupled weight decay) is scaled by
    ``scales`` and held at 0 for the trunk's variables before ``freeze_steps``."""

    class LayerRates(optimizer_class):
        def __init__(self, *args, scales: dict[int, float] | None = None, freeze_steps: int = 0, **kwargs):
            super().__init__(*args, **kwargs)
            self._scales_by_id = dict(scales or {})
            self.freeze_steps = int(freeze_steps)

        def build(self, variables):
            super().build(variables)
            # plain Python numbers: build may run inside a traced step, whose tensors cannot outlive it
            self._scale_table = [self._scales_by_id.get(id(v), 1.0) for v in variables]
            self._trunk_table = [id(v) in self._scales_by_id for v in variables]

        def _scale(self, variable):
            i = self._get_variable_index(variable)
            if not self._trunk_table[i]:
                return tf.constant(1.0)
            return tf.where(self.iterations < self.freeze_steps, 0.0, self._scale_table[i])

        def update_step(self, gradient, variable, learning_rate):
            scale = tf.cast(self._scale(variable), variable.dtype)
            return super().update_step(gradient, variable, tf.cast(learning_rate, variable.dtype) * scale)

        def _apply_weight_decay(self, variables):
            if self.weight_decay is None:
                return
            for variable in variables:
                if self._use_weight_decay(variable):
                    value = variable.value if isinstance(variable, keras.Variable) else variable
                    lr = tf.cast(self.learning_rate, value.dtype)
                    wd = tf.cast(self.weight_decay, value.dtype)
                    value.assign_sub(value * wd * lr * tf.cast(self._scale(variable), value.dtype))

    LayerRates.__name__ = f"{optimizer_class.__name__}LayerRates"
    return LayerRates


def describe(scales: dict[int, float], freeze_steps: int) -> str:
    """One log line: the range of the trunk's multipliers and the head-first stage."""
    if not scales:
        return "no pretrained trunk: every layer at the schedule's rate"
    values = np.array(list(scales.values()))
    return (f"trunk rates x{values.min():.3f}..x{values.max():.3f} of the head's over {len(values)} tensors; "
            f"trunk frozen for the first {freeze_steps} steps")
