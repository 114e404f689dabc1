"""The winner's architecture as a diagram: an inline SVG of the x4 network's stages, with their parameters.

Drawn from the ArchConfig (what the stages are and in which order data flows through them) and the
built inference network (how many parameters each stage holds), so it shows what the export holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from torch import nn

from spaces import ArchConfig, build_model, inference_config

BLOCK_NAMES = {"imdb": "IMDB", "rfdb": "RFDB", "rlfb": "RLFB", "span": "SPAB"}
_BOX_W, _BOX_H, _GAP, _TOP = 150, 74, 30, 46


@dataclass(frozen=True)
class Stage:
    title: str
    lines: tuple[str, ...]
    params: int | None = None
    kind: str = "layer"  # layer | io | join


def stages(config: ArchConfig) -> list[Stage]:
    """The network's stages in data-flow order (see spaces.network.SRNet)."""
    plain = inference_config(config)
    model = build_model(plain)
    c, scale = plain.channels, 4

    def params(name: str) -> int | None:
        module = getattr(model, name, None)
        return sum(p.numel() for p in module.parameters()) if isinstance(module, nn.Module) else None

    block = BLOCK_NAMES.get(plain.block, plain.block)
    detail = (f"distill {plain.distill_rate:g} x {plain.distill_steps}" if plain.block in ("imdb", "rfdb")
              else f"mid {plain.mid_channels or c} ch")
    out = [Stage("input", ("3 x H x W", "RGB in [0, 1]"), kind="io")]
    if plain.subtract_mean or plain.input_scale != 1:
        steps = (["- DIV2K mean"] if plain.subtract_mean else []) + \
            ([f"x {plain.input_scale:g}"] if plain.input_scale != 1 else [])
        out.append(Stage("normalise", tuple(steps), kind="join"))
    out.append(Stage("head", (f"conv 3x3, 3 -> {c}",), params("head")))
    out.append(Stage(f"{plain.num_blocks} x {block}", (f"{c} ch, {detail}",
                     f"k{plain.kernel_size}, {plain.attention}, {plain.activation}"), params("blocks")))
    body = Stage("conv", (f"3x3, {c} -> {c}",), params("body_conv"))
    if plain.fusion == "concat":
        out += [Stage("fuse", (f"concat {plain.num_blocks} outputs", f"1x1 -> {c}, {plain.activation}"),
                      params("fuse")), body, Stage("+ head", ("global skip",), kind="join")]
    elif plain.fusion == "span_taps":
        out += [body, Stage("fuse", ("concat head, conv,", "block 1, last 1st conv; 1x1"), params("fuse"))]
    else:
        out += [body, Stage("+ head", ("global skip",), kind="join")]
    out.append(Stage("tail", (f"conv 3x3, {c} -> {3 * scale * scale}",), params("tail")))
    out.append(Stage("PixelShuffle", (f"x{scale}",)))
    if plain.input_scale != 1:
        out.append(Stage("rescale", (f"/ {plain.input_scale:g}",), kind="join"))
    out.append(Stage("output", (f"3 x {scale}H x {scale}W",), kind="io"))
    return out


def architecture_svg(config: ArchConfig) -> str:
    """An SVG (scales to its container's width) of `config`'s stages left to right, the global skip drawn
    as an arc from the head to where it is added."""
    items = stages(config)
    width = len(items) * (_BOX_W + _GAP) - _GAP + 20
    height = _TOP + _BOX_H + 34
    parts = [f'<svg class="arch" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'aria-label="architecture of {escape(config.describe())}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    fills = {"layer": "#e8f0fb", "io": "#f3f3f3", "join": "#fdf3e1"}
    x_of = [10 + i * (_BOX_W + _GAP) for i in range(len(items))]
    for i, (x, stage) in enumerate(zip(x_of, items)):
        parts.append(f'<rect x="{x}" y="{_TOP}" width="{_BOX_W}" height="{_BOX_H}" rx="8" fill="{fills[stage.kind]}" '
                     f'stroke="#5b7fb5" stroke-width="1.2"/>')
        lines = [(stage.title, "bold")] + [(line, "normal") for line in stage.lines]
        if stage.params is not None:
            lines.append((f"{stage.params:,} params", "params"))
        for j, (text, style) in enumerate(lines):
            weight = ' font-weight="bold"' if style == "bold" else ""
            colour = "#666" if style == "params" else "#222"
            parts.append(f'<text x="{x + _BOX_W / 2}" y="{_TOP + 18 + j * 16}" text-anchor="middle" font-size="12.5"'
                         f'{weight} fill="{colour}">{escape(text)}</text>')
        if i:
            parts.append(f'<line x1="{x - _GAP + 2}" y1="{_TOP + _BOX_H / 2}" x2="{x - 2}" y2="{_TOP + _BOX_H / 2}" '
                         'stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>')
    titles = [stage.title for stage in items]
    if "+ head" in titles:
        start, end = x_of[titles.index("head")] + _BOX_W / 2, x_of[titles.index("+ head")] + _BOX_W / 2
        parts.append(f'<path d="M{start},{_TOP} C{start},{_TOP - 40} {end},{_TOP - 40} {end},{_TOP}" fill="none" '
                     'stroke="#c0504d" stroke-width="1.5" stroke-dasharray="5,3" marker-end="url(#arrow)"/>')
    total = sum(stage.params or 0 for stage in items)
    parts.append(f'<text x="10" y="{height - 8}" font-size="12.5" fill="#444">{escape(config.describe())}: '
                 f'{total:,} parameters in the inference form</text>')
    parts.append("</svg>")
    return "\n".join(parts)
