"""Building blocks and the x4 network of the IMDN-like search space.

This file imports torch only: the exporter cuts it down to one network's classes for a standalone model
file, in the style of the NTIRE challenge's model files. One block per class: a subclass of `Block` with a
`name` registers itself in `BLOCKS`, and the config, the search spaces and `SRNet` read what they need
from it, so a new block type is one class here. `SRNet` takes plain keyword arguments (the fields of
`spaces.config.ArchConfig`).
"""

import torch
import torch.nn.functional as F
from torch import nn

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def make_activation(name: str, channels: int) -> nn.Module:
    """One activation module per conv output: PReLU learns a slope per channel (EFDN's activation)."""
    if name == "prelu":
        return nn.PReLU(num_parameters=channels)
    if name == "lrelu":
        return nn.LeakyReLU(0.05, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}")


def conv(in_channels: int, out_channels: int, kernel_size: int, *, rep: bool = False) -> nn.Module:
    """A same-padded stride-1 conv with bias; a re-parameterisable one when `rep` is set."""
    if rep and kernel_size > 1:
        return RepConv(in_channels, out_channels, kernel_size)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


def edge_conv(in_channels: int, out_channels: int, kernel_size: int, *, rep: bool = False) -> nn.Module:
    """Like `conv`, with EFDN's edge-oriented re-parameterisable conv when `rep` is set."""
    if rep and kernel_size > 1:
        return EdgeRepConv(in_channels, out_channels, kernel_size)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class RepConv(nn.Module):
    """SPAN's Conv3XC: 1x1 -> kxk -> 1x1 at double width, plus a 1x1 skip, while training.

    All branches are linear, so `fuse()` folds them into one plain kxk conv. The input is
    zero-padded before the first 1x1 conv, which makes the fused conv exact at the borders too.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.expand = nn.Conv2d(in_channels, in_channels * gain, 1)
        self.spatial = nn.Conv2d(in_channels * gain, out_channels * gain, kernel_size)
        self.reduce = nn.Conv2d(out_channels * gain, out_channels, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.kernel_size // 2
        return self.reduce(self.spatial(self.expand(F.pad(x, (pad, pad, pad, pad))))) + self.skip(x)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        k = self.kernel_size
        w1, b1 = self.expand.weight[:, :, 0, 0], self.expand.bias
        w2, b2 = self.spatial.weight, self.spatial.bias
        w3, b3 = self.reduce.weight[:, :, 0, 0], self.reduce.bias
        weight = torch.einsum("om,mnhw,ni->oihw", w3, w2, w1)
        bias = w3 @ (torch.einsum("mnhw,n->m", w2, b1) + b2) + b3
        weight[:, :, k // 2, k // 2] += self.skip.weight[:, :, 0, 0]
        bias = bias + self.skip.bias
        return plain_conv(weight, bias)


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


class EdgeRepConv(nn.Module):
    """EFDN's edge-oriented diverse branch block (EDBB) while training.

    Branches: a kxk conv; a 1x1 conv; 1x1 -> kxk at double width; three 1x1 convs, each followed by a
    fixed Sobel-x, Sobel-y or Laplacian filter (centred in kxk) with a learnt scale and bias per channel;
    the identity when the widths match. All are linear, so `fuse()` folds them into one plain kxk conv:
    EFDN's deployed `rep_conv`. The input is zero-padded before the 1x1 convs that feed kxk filters,
    which keeps the fused conv exact at the borders.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.spatial = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.point = nn.Conv2d(in_channels, out_channels, 1)
        self.expand = nn.Conv2d(in_channels, in_channels * gain, 1)
        self.expand_spatial = nn.Conv2d(in_channels * gain, out_channels, kernel_size)
        filters = torch.tensor((SOBEL_X, SOBEL_Y, LAPLACIAN))
        margin = (kernel_size - 3) // 2
        self.register_buffer("edge_filters", F.pad(filters, (margin,) * 4), persistent=False)
        self.edge_inputs = nn.ModuleList([nn.Conv2d(in_channels, out_channels, 1) for _ in filters])
        self.edge_scale = nn.Parameter(torch.randn(len(filters), out_channels, 1, 1) * 1e-3)
        self.edge_bias = nn.Parameter(torch.zeros(len(filters), out_channels))
        self.identity = in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.kernel_size // 2
        padded = F.pad(x, (pad, pad, pad, pad))
        out = self.spatial(padded) + self.point(x) + self.expand_spatial(self.expand(padded))
        for index, edge_input in enumerate(self.edge_inputs):
            out = out + F.conv2d(edge_input(padded), self._edge_kernel(index).unsqueeze(1), self.edge_bias[index],
                                 groups=out.shape[1])
        return out + x if self.identity else out

    def _edge_kernel(self, index: int) -> torch.Tensor:
        """(out, k, k): the fixed filter times its learnt per-channel scale."""
        return self.edge_scale[index] * self.edge_filters[index]

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        centre = self.kernel_size // 2
        weight = self.spatial.weight.clone()
        bias = self.spatial.bias + self.point.bias + self.expand_spatial.bias
        weight[:, :, centre, centre] += self.point.weight[:, :, 0, 0]
        weight += torch.einsum("omhw,mi->oihw", self.expand_spatial.weight, self.expand.weight[:, :, 0, 0])
        bias = bias + torch.einsum("omhw,m->o", self.expand_spatial.weight, self.expand.bias)
        for index, edge_input in enumerate(self.edge_inputs):
            kernel = self._edge_kernel(index)
            weight += kernel[:, None] * edge_input.weight
            bias = bias + kernel.sum(dim=(1, 2)) * edge_input.bias + self.edge_bias[index]
        if self.identity:
            channels = torch.arange(weight.shape[0])
            weight[channels, channels, centre, centre] += 1
        return plain_conv(weight, bias)


def plain_conv(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A same-padded conv holding `weight` (out, in, k, k) and `bias`: what a re-parameterised conv fuses to."""
    fused = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], padding=weight.shape[2] // 2)
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


class ContrastChannelAttention(nn.Module):
    """IMDN's CCA: per-channel std + mean, then a squeeze-excite gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.gate(std + mean)


class EnhancedSpatialAttention(nn.Module):
    """RFDN's ESA (`slim=False`) or RLFN's slimmed ESA (`slim=True`: one 3x3 conv after the pool)."""

    def __init__(self, channels: int, esa_channels: int, *, slim: bool) -> None:
        super().__init__()
        f = esa_channels
        self.slim = slim
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        if not slim:
            self.conv_max = nn.Conv2d(f, f, 3, padding=1)
            self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        # max_pool2d(7, 3) needs at least 7 pixels; tiny inputs pool what they have.
        pooled = F.max_pool2d(c1, kernel_size=min(7, c1.shape[2], c1.shape[3]), stride=3)
        if self.slim:
            c3 = self.conv3(pooled)
        else:
            c3 = self.relu(self.conv3(self.relu(self.conv_max(pooled))))
            c3 = self.conv3_(c3)
        c3 = F.interpolate(c3, (x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


def make_attention(name: str, channels: int, esa_channels: int) -> nn.Module:
    """Attention modules that act on one tensor; SPAN's parameter-free attention lives in the blocks."""
    if name == "none" or name == "pfa":
        return nn.Identity()
    if name == "cca":
        return ContrastChannelAttention(channels)
    if name in ("esa", "esa_slim"):
        return EnhancedSpatialAttention(channels, esa_channels, slim=name == "esa_slim")
    raise ValueError(f"unknown attention {name!r}")


def parameter_free_attention(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SPAN's attention: the block output gates the residual sum; no parameters."""
    return (out + x) * (torch.sigmoid(out) - 0.5)


BLOCKS: dict[str, type["Block"]] = {}


class Block(nn.Module):
    """A block type; a subclass with a `name` registers itself in `BLOCKS`. It takes `distilled` and `steps`
    when `distilling` (default rate: `default_distill_rate`), else `mid_channels`, and returns its output
    and its first conv's output (SPAN's fusion taps it), `first_channels` wide."""

    name = ""
    distilling = False
    default_distill_rate: float | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        BLOCKS[cls.name] = cls


class IMDB(Block):
    """Information multi-distillation block (the challenge's IMDN baseline when attention is none).

    Each step keeps `distilled` channels aside and refines the rest; the pieces are concatenated,
    attention (CCA in the paper's IMDN) acts on the concatenation, a 1x1 conv fuses, the input is added.
    """

    name = "imdb"
    distilling = True
    default_distill_rate = 0.25

    def __init__(self, channels: int, *, distilled: int, steps: int, kernel_size: int,
                 activation: str, attention: str, esa_channels: int, rep: bool) -> None:
        super().__init__()
        self.distilled, self.remaining = distilled, channels - distilled
        self.first_channels = channels
        self.refine = nn.ModuleList(
            [conv(channels, channels, kernel_size, rep=rep)]
            + [conv(self.remaining, channels, kernel_size, rep=rep) for _ in range(steps - 1)]
        )
        self.last = conv(self.remaining, distilled, kernel_size, rep=rep)
        self.acts = nn.ModuleList([make_activation(activation, channels) for _ in range(steps)])
        self.use_pfa = attention == "pfa"
        self.attention = make_attention(attention, distilled * (steps + 1), esa_channels)
        self.fuse = nn.Conv2d(distilled * (steps + 1), channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pieces, remaining, first = [], x, None
        for layer, act in zip(self.refine, self.acts):
            out = layer(remaining)
            first = out if first is None else first
            kept, remaining = torch.split(act(out), (self.distilled, self.remaining), dim=1)
            pieces.append(kept)
        pieces.append(self.last(remaining))
        out = self.fuse(self.attention(torch.cat(pieces, dim=1)))
        out = parameter_free_attention(out, x) if self.use_pfa else out + x
        return out, first


class RFDB(Block):
    """Residual feature distillation block (RFDN): 1x1 distillation convs beside shallow-residual kxk convs.

    As in RFDN there is no residual around the block; attention (ESA in RFDN) acts after the 1x1 fuse.
    """

    name = "rfdb"
    distilling = True
    default_distill_rate = 0.5

    def __init__(self, channels: int, *, distilled: int, steps: int, kernel_size: int,
                 activation: str, attention: str, esa_channels: int, rep: bool) -> None:
        super().__init__()
        self.first_channels = channels
        self.distill = nn.ModuleList([nn.Conv2d(channels, distilled, 1) for _ in range(steps)])
        self.refine = nn.ModuleList([conv(channels, channels, kernel_size, rep=rep) for _ in range(steps)])
        self.last = conv(channels, distilled, kernel_size, rep=rep)
        self.distill_acts = nn.ModuleList([make_activation(activation, distilled) for _ in range(steps + 1)])
        self.refine_acts = nn.ModuleList([make_activation(activation, channels) for _ in range(steps)])
        self.fuse = nn.Conv2d(distilled * (steps + 1), channels, 1)
        self.use_pfa = attention == "pfa"
        self.attention = make_attention(attention, channels, esa_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pieces, r, first = [], x, None
        for distill, refine, distill_act, refine_act in zip(self.distill, self.refine, self.distill_acts,
                                                            self.refine_acts):
            pieces.append(distill_act(distill(r)))
            out = refine(r)
            first = out if first is None else first
            r = refine_act(out + r)
        pieces.append(self.distill_acts[-1](self.last(r)))
        out = self.fuse(torch.cat(pieces, dim=1))
        out = parameter_free_attention(out, x) if self.use_pfa else self.attention(out)
        return out, first


def three_convs(channels: int, mid_channels: int, kernel_size: int, *, rep: bool) -> nn.ModuleList:
    """channels -> mid -> mid -> channels: the refinement convs of RLFB and SPAN's block."""
    return nn.ModuleList([
        conv(channels, mid_channels, kernel_size, rep=rep),
        conv(mid_channels, mid_channels, kernel_size, rep=rep),
        conv(mid_channels, channels, kernel_size, rep=rep),
    ])


class RLFB(Block):
    """Residual local feature block (RLFN): three kxk convs with an identity skip, a 1x1 conv, attention."""

    name = "rlfb"

    def __init__(self, channels: int, *, mid_channels: int, kernel_size: int,
                 activation: str, attention: str, esa_channels: int, rep: bool) -> None:
        super().__init__()
        self.first_channels = mid_channels
        self.refine = three_convs(channels, mid_channels, kernel_size, rep=rep)
        self.acts = nn.ModuleList([make_activation(activation, width)
                                   for width in (mid_channels, mid_channels, channels)])
        self.fuse = nn.Conv2d(channels, channels, 1)
        self.use_pfa = attention == "pfa"
        self.attention = make_attention(attention, channels, esa_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.refine[0](x)
        out = self.acts[0](first)
        for layer, act in zip(self.refine[1:], self.acts[1:]):
            out = act(layer(out))
        out = self.fuse(out + x)
        out = parameter_free_attention(out, x) if self.use_pfa else self.attention(out)
        return out, first


class SPAB(Block):
    """SPAN's block: three kxk convs (activation after the first two), then attention with the residual.

    With "pfa" (SPAN) the third conv's output o gates the residual sum; otherwise o + x, then attention.
    """

    name = "span"

    def __init__(self, channels: int, *, mid_channels: int, kernel_size: int,
                 activation: str, attention: str, esa_channels: int, rep: bool) -> None:
        super().__init__()
        self.first_channels = mid_channels
        self.refine = three_convs(channels, mid_channels, kernel_size, rep=rep)
        self.acts = nn.ModuleList([make_activation(activation, mid_channels) for _ in range(2)])
        self.use_pfa = attention == "pfa"
        self.attention = make_attention(attention, channels, esa_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.refine[0](x)
        out = self.refine[2](self.acts[1](self.refine[1](self.acts[0](first))))
        out = parameter_free_attention(out, x) if self.use_pfa else self.attention(out + x)
        return out, first


class EFDB(Block):
    """EFDN's cell (NTIRE 2022, NKU-ESR): a 1x1 conv, then two kxk convs (edge-oriented re-parameterisable
    while training), each followed by its activation (PReLU in EFDN).

    1x1 branches take half the channels from the input and from each conv's output; a 1x1 conv fuses
    their concatenation, attention (ESA in EFDN) acts, the input is added.
    """

    name = "efdb"

    def __init__(self, channels: int, *, mid_channels: int, kernel_size: int,
                 activation: str, attention: str, esa_channels: int, rep: bool) -> None:
        super().__init__()
        half = channels // 2
        self.first_channels = mid_channels
        self.reduce = nn.Conv2d(channels, mid_channels, 1)
        self.refine = nn.ModuleList([edge_conv(mid_channels, mid_channels, kernel_size, rep=rep) for _ in range(2)])
        self.acts = nn.ModuleList([make_activation(activation, mid_channels) for _ in range(3)])
        self.branches = nn.ModuleList([nn.Conv2d(channels, half, 1)]
                                      + [nn.Conv2d(mid_channels, half, 1) for _ in range(3)])
        self.fuse = nn.Conv2d(4 * half, channels, 1)
        self.use_pfa = attention == "pfa"
        self.attention = make_attention(attention, channels, esa_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.reduce(x)
        features = [x, self.acts[0](first)]
        for layer, act in zip(self.refine, self.acts[1:]):
            features.append(act(layer(features[-1])))
        out = self.fuse(torch.cat([branch(f) for branch, f in zip(self.branches, features)], dim=1))
        out = parameter_free_attention(out, x) if self.use_pfa else self.attention(out) + x
        return out, first


class SRNet(nn.Module):
    """x4 network: head conv, blocks, fusion of block outputs, conv, global skip, pixel-shuffle tail.

    Fusion "none": blocks in sequence (challenge IMDN, RLFN). "concat": all block outputs concatenated,
    1x1 conv + activation (paper IMDN, RFDN). "span_taps": SPAN's concat of the head features, the conv
    after the body, block 1's output and the last block's first-conv output, fused by a 1x1 conv, with
    no global skip. "local": EFDN's, each block after the first has its output fused by a 1x1 conv with
    block 2's output (block 1's, for block 2) before the next block, and no conv after the body.
    Input and output are [0, 1] RGB. SPAN subtracts the DIV2K mean from its input (`subtract_mean`, not
    added back, as in SPAN) and works in a 0-255 range: `input_scale` multiplies the input and divides
    the output, so every network keeps the [0, 1] convention.
    """

    def __init__(self, *, block: str, num_blocks: int, channels: int, mid_channels: int,
                 distill_rate: float, distill_steps: int, kernel_size: int, attention: str,
                 esa_channels: int, activation: str, fusion: str, rep_conv: bool,
                 subtract_mean: bool, input_scale: float, scale: int = 4) -> None:
        super().__init__()
        self.fusion = fusion
        self.subtract_mean = subtract_mean
        self.input_scale = input_scale
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        block_type = BLOCKS[block]
        widths = dict(distilled=int(channels * distill_rate), steps=distill_steps) if block_type.distilling \
            else dict(mid_channels=mid_channels)
        self.head = conv(3, channels, 3, rep=rep_conv)
        self.blocks = nn.ModuleList([
            block_type(channels, **widths, kernel_size=kernel_size, activation=activation, attention=attention,
                       esa_channels=esa_channels, rep=rep_conv)
            for _ in range(num_blocks)])
        if fusion == "concat":
            self.fuse = nn.Sequential(nn.Conv2d(channels * num_blocks, channels, 1),
                                      make_activation(activation, channels))
        elif fusion == "span_taps":
            self.fuse = nn.Conv2d(3 * channels + self.blocks[-1].first_channels, channels, 1)
        elif fusion == "local":
            self.local_fuse = nn.ModuleList([nn.Conv2d(2 * channels, channels, 1) for _ in range(num_blocks - 1)])
        if fusion != "local":
            self.body_conv = conv(channels, channels, 3, rep=rep_conv)
        self.tail = conv(channels, 3 * scale * scale, 3, rep=rep_conv)
        self.upsample = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subtract_mean:
            x = x - self.rgb_mean.to(x.dtype)
        if self.input_scale != 1:
            x = x * self.input_scale
        head = self.head(x)
        out, outputs, first, anchor = head, [], None, None
        for index, block in enumerate(self.blocks):
            out, first = block(out)
            # Keep only the outputs a fusion reads, so sequential bodies hold one block's features at a time.
            if self.fusion == "concat" or (self.fusion == "span_taps" and index == 0):
                outputs.append(out)
            elif self.fusion == "local":
                block_output = out
                if index > 0:
                    out = self.local_fuse[index - 1](torch.cat([anchor, block_output], dim=1))
                if index <= 1:
                    anchor = block_output
        if self.fusion == "span_taps":
            out = self.fuse(torch.cat([head, self.body_conv(out), outputs[0], first], dim=1))
        elif self.fusion == "local":
            out = out + head
        else:
            if self.fusion == "concat":
                out = self.fuse(torch.cat(outputs, dim=1))
            out = self.body_conv(out) + head
        out = self.upsample(self.tail(out))
        if self.input_scale != 1:
            out = out / self.input_scale
        return out


REPARAMETERISED = (RepConv, EdgeRepConv)


def fuse_rep_convs(model: nn.Module) -> nn.Module:
    """Replace every re-parameterisable conv in `model` (in place) by its fused plain conv; returns the model."""
    for name, child in model.named_children():
        if isinstance(child, REPARAMETERISED):
            setattr(model, name, child.fuse())
        else:
            fuse_rep_convs(child)
    return model
