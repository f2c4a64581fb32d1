"""TrainConfig: presets, YAML files, ``--set`` overrides, validation messages, params and updates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ckrun.config import (
    ARCHITECTURE_KEYS,
    PRESETS,
    RECIPES,
    TrainConfig,
    build_config,
    config_schema,
    load_config,
    parse_overrides,
    read_config_file,
)
from ckrun.errors import ConfigError


def _config_error(*overrides: str, **base: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides, **base)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


# %% presets and defaults


def test_defaults_come_from_the_default_preset() -> None:
    cfg = load_config()
    assert cfg.preset == "default"
    for key in ARCHITECTURE_KEYS:
        expected = PRESETS["default"][key]
        assert getattr(cfg, key) == (tuple(expected) if isinstance(expected, list) else expected), key
    # The seed's optimiser settings stay the defaults: L2 1e-4, Adam at 1e-3, batch 16.
    assert (cfg.l2, cfg.learning_rate, cfg.batch_size) == (1e-4, 1e-3, 16)


def test_the_default_fine_tunes_the_pretrained_network_and_preset_resnet_is_the_former_default() -> None:
    default, resnet = load_config(), load_config(None, ["preset=resnet"])
    assert (default.backbone, default.image_size, default.channels, default.final_feature_size) == (
        "fer_xception",
        64,
        1,
        4,
    )
    assert (resnet.backbone, resnet.image_size, resnet.filters, resnet.final_feature_size) == (
        "resnet",
        96,
        (32, 64, 128),
        6,
    )
    for key in RECIPES["resnet"]:  # the same recipe on either network...
        assert getattr(resnet, key) == getattr(default, key), key
    # ...except that the pretrained one, near its best within a dozen epochs, stops early, and
    # learns the seven CK+ emotions beside the three classes (the ResNet preset is the former default)
    assert (default.early_stopping, resnet.early_stopping) == (12, 0)
    assert (default.fine_emotion_weight, resnet.fine_emotion_weight) == (0.3, 0.0)
    switched = default.updated(preset="resnet")
    assert (switched.backbone, switched.image_size) == ("resnet", 96)
    assert default.updated(backbone="resnet").image_size == 64  # --set backbone keeps the preset's size


def test_a_config_logged_before_the_pretrained_default_still_means_the_resnet() -> None:
    import yaml

    from ckrun.config import build_config

    current = load_config()
    assert build_config(yaml.safe_load(current.to_yaml())) == current  # a new config.yaml names its backbone
    old = yaml.safe_load(load_config(None, ["preset=resnet"]).to_yaml())
    old.pop("backbone")
    old["preset"] = "default"  # what a run logged before the option was added looks like
    rebuilt = build_config(old)
    assert (rebuilt.backbone, rebuilt.image_size, rebuilt.filters) == ("resnet", 96, (32, 64, 128))
    assert load_config(None, ["filters=[16,32]"]).backbone == "resnet"  # widths name the ResNet
    assert load_config(None, ["filters=[16,32]", "backbone=fer_xception"]).backbone == "fer_xception"


def test_each_preset_brings_its_recipe_and_set_still_wins() -> None:
    """The default preset trains with its chosen recipe; tiny and seed keep the plain one."""
    assert set(RECIPES) == set(PRESETS) and RECIPES["default"] and not RECIPES["tiny"]
    default, tiny = load_config(), load_config(None, ["preset=tiny"])
    for key, value in RECIPES["default"].items():
        assert getattr(default, key) == value, key
        assert getattr(tiny, key) == TrainConfig.model_fields[key].default, key  # plain recipe
    assert load_config(None, ["tta=none"]).tta == "none"  # --set overrides the preset's recipe
    assert load_config(None, ["tta=none"]).weight_averaging == RECIPES["default"]["weight_averaging"]
    switched = default.updated(preset="tiny")
    assert all(getattr(switched, k) == TrainConfig.model_fields[k].default for k in RECIPES["default"])
    assert default.updated(preset="tiny", tta="flip").tta == "flip"
    assert tiny.updated(preset="default").weight_averaging == RECIPES["default"]["weight_averaging"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_resolves_to_its_line(preset: str) -> None:
    cfg = load_config(None, [f"preset={preset}"])
    assert cfg.preset == preset
    assert cfg.image_size == PRESETS[preset]["image_size"]
    assert list(cfg.filters) == PRESETS[preset]["filters"]
    assert list(cfg.blocks) == PRESETS[preset]["blocks"]
    assert list(cfg.strides) == PRESETS[preset]["strides"]
    assert cfg.final_feature_size >= 2


def test_seed_preset_can_be_shrunk_with_one_override() -> None:
    cfg = load_config(None, ["preset=seed", "image_size=64"])
    assert cfg.image_size == 64
    assert cfg.filters == (64, 256) and cfg.blocks == (6, 6) and cfg.channels == 3
    assert cfg.total_stride == 4 and cfg.final_feature_size == 16


def test_total_stride_counts_stem_stride_and_pool() -> None:
    cfg = load_config(None, ["preset=tiny", "stem_stride=2", "stem_pool=true"])
    assert cfg.total_stride == 2 * 2 * 1 * 2
    assert cfg.final_feature_size == 32 // 8
    # ceil, not floor: 33 px over a stride of 2 leaves 17 px.
    assert load_config(None, ["preset=tiny", "image_size=33"]).final_feature_size == 17


# %% overrides, files and precedence


def test_parse_overrides_reads_values_as_yaml() -> None:
    parsed = parse_overrides(
        ["filters=[32, 64]", "augment=false", "l2=0.001", "epochs=3", "cache=/tmp/x", "aus=", "note=a=b"]
    )
    assert parsed == {
        "filters": [32, 64],
        "augment": False,
        "l2": 0.001,
        "epochs": 3,
        "cache": "/tmp/x",
        "aus": None,
        "note": "a=b",
    }
    assert parse_overrides([" epochs = 5"]) == {"epochs": 5}


@pytest.mark.parametrize("pair", ["epochs", "=3", " =3"])
def test_parse_overrides_rejects_a_pair_without_key_or_equals(pair: str) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides([pair])


def test_parse_overrides_rejects_bad_yaml_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"--set filters: cannot parse value '\[1, 2'"):
        parse_overrides(["filters=[1, 2"])


def test_set_values_as_documented_resolve_to_typed_fields() -> None:
    # PyYAML reads 1e-4 as a string; pydantic's lax mode still makes it a float.
    cfg = load_config(None, ["filters=[32,64]", "blocks=[2,2]", "l2=1e-4", "augment=false"])
    assert cfg.filters == (32, 64) and cfg.blocks == (2, 2) and cfg.strides == (1, 2)
    assert cfg.l2 == pytest.approx(1e-4)
    assert cfg.augment is False


def test_precedence_defaults_base_file_overrides(tmp_path: Path) -> None:
    file = tmp_path / "run.yaml"
    file.write_text("epochs: 7\nbatch_size: 8\npreset: tiny\n")
    cfg = load_config(file, ["batch_size=4"], epochs=2, learning_rate=0.01)
    assert cfg.epochs == 7  # file beats base
    assert cfg.batch_size == 4  # --set beats file
    assert cfg.learning_rate == 0.01  # base beats defaults
    assert cfg.preset == "tiny" and cfg.image_size == 32
    assert cfg.dropout == 0.2  # default


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- epochs\n- 3\n")
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping of config keys, got list"):
        load_config(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty) == {}
    assert load_config(empty) == load_config()


def test_unknown_key_in_a_file_is_named(tmp_path: Path) -> None:
    file = tmp_path / "run.yaml"
    file.write_text("epochs: 3\nlearnig_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key\\(s\\): learnig_rate"):
        load_config(file)


# %% validation


def test_negative_l2_names_key_and_value() -> None:
    message = _config_error("l2=-0.5")
    assert "l2" in message and "-0.5" in message
    assert message.startswith("invalid config:")


def test_unknown_preset_lists_the_valid_ones() -> None:
    message = _config_error("preset=huge")
    assert "unknown preset 'huge'" in message
    assert "tiny, default, resnet, seed" in message


def test_non_string_preset_is_a_config_error() -> None:
    assert "unknown preset [1]" in _config_error("preset=[1]")


def test_unequal_stage_lists_quote_what_was_received() -> None:
    message = _config_error("filters=[8,16]", "blocks=[1,1,1]", "strides=[1,2]")
    assert "filters=[8, 16], blocks=[1, 1, 1], strides=[1, 2]" in message


def test_filters_and_blocks_of_different_lengths_are_rejected() -> None:
    message = _config_error("filters=[8,16]", "blocks=[1,1,1]")
    assert "filters=[8, 16]" in message and "blocks=[1, 1, 1]" in message


def test_filters_alone_derive_blocks_and_strides_from_the_preset() -> None:
    # The README's own example: --set filters=[32,64] on the 3-stage default preset.
    cfg = load_config(None, ["filters=[32,64]"])
    assert cfg.blocks == (PRESETS["default"]["blocks"][0],) * 2
    assert cfg.strides == (PRESETS["default"]["strides"][0], 2)


def test_blocks_alone_derive_doubling_filters() -> None:
    cfg = load_config(None, ["preset=seed", "blocks=[3,4,6]", "image_size=64"])
    assert cfg.filters == (64, 128, 256) and cfg.strides == (2, 2, 2)


def test_updated_rederives_what_a_new_depth_implies() -> None:
    cfg = load_config(None, ["blocks=[2,2,2,2]"])
    two = cfg.updated(filters=[8, 16])
    assert two.blocks == (PRESETS["default"]["blocks"][0],) * 2 and two.strides == (1, 2)
    four = cfg.updated(filters=[8, 16, 32, 64])
    assert four.blocks == (2, 2, 2, 2) and four.strides == (1, 2, 2, 2)
    assert cfg.updated(l2=0.5).strides == cfg.strides


@pytest.mark.parametrize("key", ["filters", "blocks"])
def test_a_scalar_where_a_list_belongs_is_a_config_error(key: str) -> None:
    message = _config_error(f"{key}=32")
    assert key in message and "32" in message


def test_non_positive_stage_values_are_rejected() -> None:
    assert "positive" in _config_error("preset=tiny", "filters=[8,0]", "blocks=[1,1]", "strides=[1,2]")


def test_image_too_small_for_the_depth() -> None:
    message = _config_error("preset=tiny", "image_size=8", "filters=[8,8,8,8]", "blocks=[1,1,1,1]")
    assert "image_size=8 is too small" in message
    assert "total stride of 8" in message
    # The same depth fits a larger image.
    assert load_config(None, ["preset=tiny", "image_size=16", "filters=[8,8,8,8]", "blocks=[1,1,1,1]"])


def test_unknown_override_key_is_named() -> None:
    message = _config_error("learning_rat=0.1", "epochz=3")
    assert "epochz" in message and "learning_rat" in message


def test_wrong_type_names_key_and_value() -> None:
    message = _config_error("epochs=many")
    assert "epochs" in message and "'many'" in message


def test_several_problems_are_reported_on_one_line() -> None:
    message = _config_error("epochs=0", "dropout=1.5")
    assert "epochs" in message and "dropout" in message and ";" in message


def test_fractions_must_leave_training_data() -> None:
    assert "at least 20%" in _config_error("val_fraction=0.45", "test_fraction=0.4")


def test_empty_au_list_is_rejected_but_null_is_fine() -> None:
    assert "aus must list at least one AU" in _config_error("aus=[]")
    assert load_config(None, ["aus=null"]).aus is None
    assert load_config(None, ["aus=[12, 1]"]).aus == (12, 1)


def test_build_config_turns_extra_keys_into_config_error() -> None:
    with pytest.raises(ConfigError, match=r"bogus.*received 3"):
        build_config({"bogus": 3})


def test_config_is_frozen_and_forbids_extra_keys() -> None:
    cfg = load_config()
    with pytest.raises(ValidationError):
        cfg.epochs = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        TrainConfig(bogus=1)  # type: ignore[call-arg]


# %% derived strides


def test_strides_derived_when_depth_changes_without_strides() -> None:
    cfg = load_config(None, ["preset=tiny", "filters=[8,16,32]", "blocks=[1,1,2]"])
    assert cfg.strides == (1, 2, 2)
    # The seed preset starts with stride 2; the derived list keeps it.
    seed = load_config(None, ["preset=seed", "filters=[16,32,64]", "blocks=[1,1,1]", "image_size=64"])
    assert seed.strides == (2, 2, 2)
    # Blocks alone also set the stage count.
    assert load_config(None, ["preset=tiny", "blocks=[2,2]"]).strides == (1, 2)


def test_explicit_strides_are_kept() -> None:
    cfg = load_config(None, ["preset=tiny", "filters=[8,16,32]", "blocks=[1,1,1]", "strides=[2,1,1]"])
    assert cfg.strides == (2, 1, 1)


# %% updated, params, yaml


def test_updated_is_a_validated_copy() -> None:
    cfg = load_config(None, ["preset=tiny"])
    new = cfg.updated(l2=0.01, epochs=2)
    assert (new.l2, new.epochs) == (0.01, 2)
    assert (cfg.l2, cfg.epochs) == (1e-4, TrainConfig.model_fields["epochs"].default)
    assert new.filters == cfg.filters
    with pytest.raises(ConfigError, match="l2"):
        cfg.updated(l2=-1)


def test_updated_preset_change_reapplies_architecture() -> None:
    cfg = load_config(None, ["preset=tiny", "image_size=48", "epochs=4"])
    new = cfg.updated(preset="default")
    default = PRESETS["default"]
    assert new.image_size == default["image_size"] and new.filters == tuple(default["filters"])
    assert new.stem_filters == default["stem_filters"] and new.stem_pool == default["stem_pool"]
    assert new.epochs == 4  # non-architecture keys survive
    explicit = cfg.updated(preset="default", image_size=96)
    assert explicit.image_size == 96
    # Same preset: architecture overrides survive.
    assert cfg.updated(preset="tiny").image_size == 48


def test_params_are_flat_strings_with_lists_as_json() -> None:
    cfg = load_config(None, ["preset=tiny", "aus=[1, 12]"])
    params = cfg.params()
    assert set(params) == set(TrainConfig.model_fields)
    assert all(isinstance(v, str) for v in params.values())
    assert json.loads(params["filters"]) == [8, 16]
    assert json.loads(params["strides"]) == [1, 2]
    assert json.loads(params["aus"]) == [1, 12]
    assert params["l2"] == "0.0001"
    assert params["augment"] == "True"
    assert load_config().params()["aus"] == "None"


def test_yaml_round_trip() -> None:
    cfg = load_config(None, ["preset=tiny", "aus=[1, 2]", "l2=0.003", "crop=none"])
    text = cfg.to_yaml()
    data = yaml.safe_load(text)
    assert data["filters"] == [8, 16]
    assert build_config(data) == cfg


def test_yaml_written_by_a_run_loads_as_a_config_file(tmp_path: Path) -> None:
    cfg = load_config(None, ["preset=seed", "image_size=64", "epochs=2"])
    file = tmp_path / "config.yaml"
    file.write_text(cfg.to_yaml())
    assert load_config(file) == cfg


def test_schema_lists_fields_with_descriptions() -> None:
    schema = config_schema()
    assert "l2" in schema["properties"]
    assert "L2" in schema["properties"]["l2"]["description"]


def test_a_pool_grid_finer_than_the_feature_map_is_rejected_naming_both() -> None:
    # tiny at 16 px ends on an 8 px map (total stride 2): 8 cells a side fit, 9 do not.
    assert load_config(None, ["preset=tiny", "image_size=16", "pooling=grid", "pool_grid=8"]).pool_grid == 8
    with pytest.raises(ConfigError, match=r"pool_grid=9 .*image_size=16 gives 8 px"):
        load_config(None, ["preset=tiny", "image_size=16", "pooling=grid", "pool_grid=9"])
    # The grid size only matters for the grid.
    assert load_config(None, ["preset=tiny", "image_size=16", "pool_grid=9"]).pooling == "global"
    # Left unset, the grid is 3 x 3, or as fine as a smaller map allows: the default at 32 px
    # (2 px after a total stride of 16) still builds, with a 2 x 2 grid.
    assert load_config(None, ["image_size=96"]).pool_cells == 3
    small = load_config(None, ["image_size=32"])
    assert (small.pooling, small.pool_grid, small.pool_cells) == ("grid_au", None, 2)
    assert small.updated(epochs=2).pool_cells == 2


@pytest.mark.parametrize("override", ["epochs=true", "l2=false", "fusion_weight=true", "pool_grid=false"])
def test_a_boolean_is_not_taken_for_a_number(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}: expected a number, received (True|False)"):
        load_config(overrides=[override])


def test_booleans_still_set_boolean_keys_and_the_yaml_round_trips() -> None:
    cfg = load_config(overrides=["augment=false", "calibrate=true", "aus=[1,2,4]"])
    assert cfg.augment is False and cfg.calibrate is True
    assert build_config(yaml.safe_load(cfg.to_yaml())) == cfg
