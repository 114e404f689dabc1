"""Property-based tests of ArchConfig parsing: any JSON gives a valid config or one clear ValueError."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaces import ArchConfig
from spaces.config import ACTIVATIONS, ATTENTIONS, FUSIONS, KERNEL_SIZES, SCHEMA_VERSION
from spaces.network import BLOCKS

FIELDS = tuple(f.name for f in dataclasses.fields(ArchConfig))
# What a clear message talks about: a field (named), the JSON itself, or the schema version.
MESSAGE_WORDS = tuple(f"ArchConfig.{name}" for name in FIELDS) + (
    "distill_rate=", "not valid JSON", "must be a JSON object", "unknown ArchConfig field", "schema_version")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-3, max_value=600),
    st.integers(min_value=2**1023, max_value=10**400),  # past float range (found: input_scale overflowed)
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)
# Values a field plausibly takes, so that many drawn configs are valid and reach the deeper checks.
plausible = {
    "block": st.sampled_from(tuple(BLOCKS)), "attention": st.sampled_from(ATTENTIONS),
    "activation": st.sampled_from(ACTIVATIONS), "fusion": st.sampled_from(FUSIONS),
    "kernel_size": st.sampled_from(KERNEL_SIZES), "num_blocks": st.integers(0, 70),
    "channels": st.integers(0, 600), "mid_channels": st.none() | st.integers(-1, 600),
    "distill_rate": st.none() | st.floats(-0.5, 1.5), "distill_steps": st.none() | st.integers(0, 9),
    "esa_channels": st.none() | st.integers(0, 300), "rep_conv": st.booleans(),
    "subtract_mean": st.booleans(), "input_scale": st.sampled_from([1.0, 255, 0, -1]) | st.integers(2**1023, 10**400),
    "schema_version": st.sampled_from([SCHEMA_VERSION, SCHEMA_VERSION + 1]),
}
fields = st.sampled_from(FIELDS + ("schema_version",))
objects = st.one_of(
    st.dictionaries(fields, json_values, max_size=6),  # known fields, any JSON values
    st.fixed_dictionaries({}, optional={k: v | json_values for k, v in plausible.items()}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=4),  # any keys
    json_values,  # not even an object
)


def parse_or_explain(text: str) -> ArchConfig | None:
    """The config, or None after checking the ValueError is the clear one-line validation error."""
    try:
        return ArchConfig.from_json(text)
    except ValueError as error:
        message = str(error)
        assert type(error) is ValueError, repr(error)
        assert message and "\n" not in message, repr(message)
        assert any(word in message for word in MESSAGE_WORDS), message
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects)
def test_any_json_value_parses_or_fails_clearly(value):
    config = parse_or_explain(json.dumps(value))
    if config is not None:
        assert ArchConfig.from_json(config.to_json()) == config  # what parses round-trips
        assert ArchConfig.from_dict(json.loads(config.key())).key() == config.key()


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.text(max_size=40),
    # Nesting deeper than the JSON decoder's recursion, numbers past Python's 4300-digit limit (both found).
    st.integers(5_000, 200_000).map(lambda depth: "[" * depth + "]" * depth),
    st.tuples(st.sampled_from(FIELDS), st.integers(4_301, 6_000)).map(
        lambda item: json.dumps({item[0]: 0})[:-2] + "1" * item[1] + "}"),
))
def test_any_text_parses_or_fails_clearly(text):
    parse_or_explain(text)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=plausible))
def test_valid_configs_are_canonical(fields):
    config = parse_or_explain(json.dumps(fields))
    if config is not None:
        assert config == ArchConfig.from_dict(config.to_dict()) and hash(config) == hash(ArchConfig.from_json(config.key()))
        if config.block in ("imdb", "rfdb"):
            assert config.mid_channels is None and 1 <= config.distilled_channels < config.channels
        else:
            assert config.distill_rate is None and config.distill_steps is None and config.mid_channels >= 1
