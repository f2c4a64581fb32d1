"""Adam with a smaller learning rate for the pretrained layers (discriminative fine-tuning).

Why: fine-tuning a pretrained network on a few hundred faces at one learning rate moves the
features learnt on ~35,000 faces as fast as the new, randomly initialised heads, and can wash
them out before the heads have learnt to read them (Howard & Ruder 2018, discriminative
fine-tuning; Kumar et al. 2022, "fine-tuning can distort pretrained features"). A lower rate
for the pretrained layers keeps them closer to what they were while the heads learn at the
full rate. Scaling the gradients instead would not do it: Adam divides each update by the
gradient's own running scale, so a constant factor on the gradient cancels out.

Keras 3 optimizers have one learning rate for every variable; this subclass multiplies it, in
each variable's update, for the variables whose path starts with the pretrained layers' name
prefix. The set is fixed when the optimizer is built, so the traced step holds no extra work.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="ckrun")
class PrefixScaledAdam(keras.optimizers.Adam):
    """Adam that multiplies the learning rate by `scale` for the variables whose path starts with `prefix`."""

    def __init__(self, *, prefix: str, scale: float, **kwargs: Any) -> None:
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        super().__init__(**kwargs)
        self.prefix = prefix
        self.scale = float(scale)
        self._scaled_indices: set[int] = set()

    def build(self, var_list: list[Any]) -> None:
        super().build(var_list)
        self._scaled_indices = {
            self._get_variable_index(variable) for variable in var_list if variable.path.startswith(self.prefix)
        }

    def scaled_paths(self, var_list: list[Any]) -> list[str]:
        """The paths among `var_list` that this optimizer updates at the scaled rate (what a test can check)."""
        return [v.path for v in var_list if self._get_variable_index(v) in self._scaled_indices]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.scale != 1.0 and self._get_variable_index(variable) in self._scaled_indices:
            learning_rate = keras.ops.multiply(keras.ops.cast(learning_rate, variable.dtype), self.scale)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "prefix": self.prefix, "scale": self.scale}
