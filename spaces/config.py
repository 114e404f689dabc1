"""`ArchConfig`: the frozen, validated description of one IMDN-like x4 network.

It is the toolkit's one currency: every metric, plot row and export is keyed by it. Fields that a
block type does not use are stored as None and block-dependent defaults are resolved at creation,
so two configs describing the same network compare (and hash) equal.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from spaces.network import BLOCKS

SCHEMA_VERSION = 1

# The block types are the classes registered in spaces.network.BLOCKS (read when a config is made): a new
# one is one class there.
ATTENTIONS = ("none", "cca", "esa", "esa_slim", "pfa")
ACTIVATIONS = ("lrelu", "relu", "silu", "gelu", "prelu")
FUSIONS = ("none", "concat", "span_taps", "local")
KERNEL_SIZES = (1, 3, 5, 7)
DEFAULT_SLIM_ESA_CHANNELS = 16


@dataclasses.dataclass(frozen=True)
class ArchConfig:
    """One network of the space. Defaults give the NTIRE 2022 challenge's IMDN baseline.

    block: a name of `spaces.network.BLOCKS` (imdb, rfdb, rlfb, span, efdb). mid_channels: inner width of the
    blocks that are not distilling (default: channels). distill_rate / distill_steps: distilling blocks
    (imdb, rfdb) only (defaults: the block's paper rate, 0.25 / 0.5, and 3 steps).
    esa_channels: esa/esa_slim only (defaults channels // 4 as in RFDN, 16 as in RLFN).
    subtract_mean / input_scale: SPAN's input normalisation and data range.
    """

    block: str = "imdb"
    num_blocks: int = 8
    channels: int = 64
    mid_channels: int | None = None
    distill_rate: float | None = None
    distill_steps: int | None = None
    kernel_size: int = 3
    attention: str = "none"
    esa_channels: int | None = None
    activation: str = "lrelu"
    fusion: str = "none"
    rep_conv: bool = False
    subtract_mean: bool = False
    input_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("block", self.block, tuple(BLOCKS))
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_int("num_blocks", self.num_blocks, 1, 64)
        _check_int("channels", self.channels, 4, 512)
        _check_int("kernel_size", self.kernel_size, 1, max(KERNEL_SIZES))
        _check_choice("kernel_size", self.kernel_size, KERNEL_SIZES)
        for name in ("rep_conv", "subtract_mean"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ArchConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.input_scale, bool) or not isinstance(self.input_scale, (int, float)) \
                or not 0 < self.input_scale < sys.float_info.max:  # an int too large for a float too
            raise ValueError(f"ArchConfig.input_scale must be a positive number (1 or 255), got {self.input_scale!r}")
        self._set("input_scale", float(self.input_scale))

        if is_distilling(self.block):
            self._set("mid_channels", None)
            rate = BLOCKS[self.block].default_distill_rate if self.distill_rate is None else self.distill_rate
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
                raise ValueError(f"ArchConfig.distill_rate must be a number in (0, 1), got {rate!r}")
            self._set("distill_rate", float(rate))
            self._set("distill_steps", 3 if self.distill_steps is None else self.distill_steps)
            _check_int("distill_steps", self.distill_steps, 1, 8)
            distilled = self.distilled_channels
            if not 1 <= distilled <= self.channels - 1:
                raise ValueError(
                    f"ArchConfig.distill_rate={rate} gives {distilled} distilled channels for channels="
                    f"{self.channels}; int(channels * distill_rate) must be between 1 and channels - 1")
        else:
            self._set("distill_rate", None)
            self._set("distill_steps", None)
            self._set("mid_channels", self.channels if self.mid_channels is None else self.mid_channels)
            _check_int("mid_channels", self.mid_channels, 1, 512)

        if self.attention in ("esa", "esa_slim"):
            default = self.channels // 4 if self.attention == "esa" else DEFAULT_SLIM_ESA_CHANNELS
            self._set("esa_channels", default if self.esa_channels is None else self.esa_channels)
            _check_int("esa_channels", self.esa_channels, 1, 256)
        else:
            self._set("esa_channels", None)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @property
    def distilled_channels(self) -> int | None:
        """Channels each distillation step keeps aside (imdb/rfdb), None for other blocks."""
        if not is_distilling(self.block):
            return None
        return int(self.channels * self.distill_rate)

    def network_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `spaces.network.SRNet` (plain values, no None)."""
        kwargs = dataclasses.asdict(self)
        kwargs["mid_channels"] = self.mid_channels or self.channels
        kwargs["distill_rate"] = self.distill_rate or 0.0
        kwargs["distill_steps"] = self.distill_steps or 0
        kwargs["esa_channels"] = self.esa_channels or 0
        return kwargs

    def replace(self, **changes: Any) -> ArchConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=indent is None)

    def key(self) -> str:
        """Canonical one-line JSON: equal networks give equal keys."""
        return self.to_json(indent=None)

    def describe(self) -> str:
        """A short human label, for tables and plot hovers."""
        parts = [self.block, f"b{self.num_blocks}", f"c{self.channels}"]
        if is_distilling(self.block):
            parts.append(f"d{self.distill_rate:g}x{self.distill_steps}")
        elif self.mid_channels != self.channels:
            parts.append(f"m{self.mid_channels}")
        parts += [f"k{self.kernel_size}", self.attention, self.activation, self.fusion]
        if self.rep_conv:
            parts.append("rep")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: Any) -> ArchConfig:
        if not isinstance(data, dict):
            raise ValueError(f"an ArchConfig must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"ArchConfig schema_version {version!r} is not supported (this toolkit reads {SCHEMA_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ArchConfig field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ArchConfig:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:  # also: nesting too deep, an integer of 4300+ digits
            raise ValueError(f"config is not valid JSON: {str(error).splitlines()[0]}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> ArchConfig:
        """Read a config JSON file; errors name the file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text())
        except OSError as error:
            raise ValueError(f"cannot read config {path}: {error.strerror}") from None
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def is_distilling(block: str) -> bool:
    """Whether the block type takes distill_rate and distill_steps (else mid_channels)."""
    return BLOCKS[block].distilling


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"ArchConfig.{name} must be one of {list(allowed)}, got {value!r}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"ArchConfig.{name} must be an integer in [{low}, {high}], got {value!r}")
