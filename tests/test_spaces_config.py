import json

import pytest

from spaces import ArchConfig, get_reference
from spaces.config import SCHEMA_VERSION


def test_defaults_are_the_challenge_baseline():
    assert ArchConfig() == get_reference("imdn")


def test_json_round_trip_for_every_reference():
    for name in ("imdn", "rfdn", "rlfn", "imdn_paper", "span"):
        config = get_reference(name)
        text = config.to_json()
        assert json.loads(text)["schema_version"] == SCHEMA_VERSION
        assert ArchConfig.from_json(text) == config
        assert ArchConfig.from_dict(json.loads(config.key())) == config


def test_unused_fields_are_canonical():
    # mid_channels means nothing to an IMDB block; distill_rate nothing to RLFB: equal networks, equal keys.
    assert ArchConfig(mid_channels=99) == ArchConfig()
    rlfb = ArchConfig(block="rlfb", channels=32, distill_rate=0.4, distill_steps=2)
    assert rlfb.distill_rate is None and rlfb.distill_steps is None and rlfb.mid_channels == 32
    assert ArchConfig(esa_channels=7).esa_channels is None
    assert ArchConfig(attention="esa", channels=48).esa_channels == 12
    assert ArchConfig(block="rfdb").distill_rate == 0.5


def test_load_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        ArchConfig.load(path)
    path.write_text(json.dumps({"block": "imdb", "channels": 3}))
    with pytest.raises(ValueError, match=r"bad.json.*ArchConfig.channels must be an integer in \[4, 512\], got 3"):
        ArchConfig.load(path)


@pytest.mark.parametrize("fields, message", [
    ({"block": "resnet"}, r"ArchConfig.block must be one of \['imdb', 'rfdb', 'rlfb', 'span', 'efdb'\], got 'resnet'"),
    ({"attention": "se"}, r"ArchConfig.attention must be one of"),
    ({"activation": "tanh"}, r"ArchConfig.activation must be one of"),
    ({"fusion": "sum"}, r"ArchConfig.fusion must be one of"),
    ({"kernel_size": 4}, r"ArchConfig.kernel_size must be one of \[1, 3, 5, 7\], got 4"),
    ({"kernel_size": 3.0}, r"ArchConfig.kernel_size must be an integer"),
    ({"num_blocks": 0}, r"ArchConfig.num_blocks must be an integer in \[1, 64\], got 0"),
    ({"num_blocks": True}, r"ArchConfig.num_blocks must be an integer"),
    ({"channels": 64.0}, r"ArchConfig.channels must be an integer"),
    ({"distill_rate": 0.01}, r"distill_rate=0.01 gives 0 distilled channels for channels=64"),
    ({"distill_rate": 1.0}, r"ArchConfig.distill_rate must be a number in \(0, 1\), got 1.0"),
    ({"channels": 8, "distill_rate": 0.1}, r"gives 0 distilled channels for channels=8; int\(channels \* distill_rate\)"),
    ({"distill_steps": 0}, r"ArchConfig.distill_steps must be an integer in \[1, 8\], got 0"),
    ({"block": "rlfb", "mid_channels": 0}, r"ArchConfig.mid_channels must be an integer in \[1, 512\], got 0"),
    ({"attention": "esa", "esa_channels": 0}, r"ArchConfig.esa_channels must be an integer"),
    ({"rep_conv": 1}, r"ArchConfig.rep_conv must be true or false, got 1"),
    ({"input_scale": -255}, r"ArchConfig.input_scale must be a positive number"),
    ({"input_scale": float("nan")}, r"ArchConfig.input_scale must be a positive number"),
])
def test_invalid_configs_are_rejected_with_the_field_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ArchConfig(**fields)


def test_from_dict_rejects_unknown_fields_and_versions():
    with pytest.raises(ValueError, match=r"unknown ArchConfig field\(s\) \['chanels'\]"):
        ArchConfig.from_dict({"chanels": 32})
    with pytest.raises(ValueError, match="schema_version 99 is not supported"):
        ArchConfig.from_dict({"schema_version": 99})
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        ArchConfig.from_json("[1, 2]")
