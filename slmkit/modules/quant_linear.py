"""QuantLinear: a Linear whose weights are stored packed as integers and run through CPU kernels.

Three storage layouts, picked from the quantization grid:
  int8   8-bit symmetric per-channel: int8 [out, in] + bf16 scales → `_weight_int8pack_mm`
  int4   4-bit grouped (group 32/64/128/256): two codes per byte in ATen's CPU int4 layout
         + bf16 [groups, out, 2] scales/zeros → `_weight_int4pack_mm_for_cpu`
  codes  anything else (2/3 bits, grouped int8, odd groups): uint8 codes, dequantized per call
With `act_bits=8` (SmoothQuant W8A8) inputs are quantized per token on the fly and multiplied
by int8 weights in integer arithmetic (`torch._int_mm`). The fast kernels take bfloat16
activations, so inputs are cast to bfloat16 around them (measured: the float32-input paths of
these ops are 10-30× slower than an fp32 matmul on this CPU).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch
from torch import nn

from slmkit.anatomy import get_module, set_module

KERNEL_GROUP_SIZES = (32, 64, 128, 256)  # what the int4 CPU kernel accepts


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """(u - zero) · scale, groups laid out contiguously along the input dimension."""
    rows, cols = codes.shape
    g = cols // scale.shape[1]
    q = codes.float().view(rows, -1, g) - zero.float()[..., None]
    return (q * scale[..., None]).view(rows, cols)


# The packed kernels' thread barriers cost milliseconds when cores are shared (measured: int4 one-row
# matmul 0.05-0.9 ms on one thread, 7-50 ms on two); a decode step is memory-bound, so it uses one thread.
SINGLE_THREAD_ROWS = 4


@contextmanager
def single_thread_if(condition: bool):
    threads = torch.get_num_threads()
    if not condition or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=32)
def int4_layout(rows: int, cols: int) -> torch.Tensor:
    """For each nibble of ATen's packed CPU int4 weight (low nibble first), the flat [rows, cols]
    index it holds. Found by packing probe matrices that spell out each position's index 4 bits
    at a time, so unpacking is an exact gather whatever the layout."""
    index = torch.arange(rows * cols)
    source = torch.zeros_like(index)
    for shift in range(0, max(1, (rows * cols - 1).bit_length()), 4):
        probe = ((index >> shift) & 15).view(rows, cols).to(torch.int32)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(probe, 1)
        source |= torch.stack([packed & 15, packed >> 4], -1).flatten().long() << shift
    return source


class QuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int, symmetric: bool,
                 layout: str, act_bits: int | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size, self.symmetric, self.layout, self.act_bits = bits, group_size, symmetric, layout, act_bits
        self.register_buffer("bias", None)

    @property
    def kernel_group(self) -> int:
        return min(self.group_size or self.in_features, self.in_features)

    @property
    def groups(self) -> int:
        return self.in_features // self.kernel_group

    @classmethod
    def from_codes(cls, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int,
                   bias: torch.Tensor | None = None, act_bits: int | None = None,
                   group_size: int | None = None) -> "QuantLinear":
        """Pack unsigned codes [out, in] with scale/zero [out, groups] into the fastest layout that fits.
        `group_size` is the grid's nominal group (0 = per channel); inferred from the scales if omitted."""
        out_features, in_features = codes.shape
        groups = scale.shape[1]
        if group_size is None:
            group_size = 0 if groups == 1 else in_features // groups
        symmetric = bool(torch.all(zero == 2 ** (bits - 1)))
        if bits == 8 and groups == 1 and symmetric:
            layout = "int8"
        elif bits == 4 and in_features // groups in KERNEL_GROUP_SIZES and out_features % 16 == 0 and act_bits is None:
            layout = "int4"
        else:
            layout = "codes"
        module = cls(in_features, out_features, bits, group_size, symmetric, layout, act_bits)
        scale16 = scale.to(torch.bfloat16)
        if layout == "int8":
            module.register_buffer("qweight", (codes.to(torch.int16) - 128).to(torch.int8).contiguous())
            module.register_buffer("scale", scale16[:, 0].contiguous())
        elif layout == "int4":
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32).contiguous(), 1)
            offset = (8 - zero.float()) * scale16.float()  # kernel computes (u - 8)·s + offset
            module.register_buffer("qweight", packed)
            module.register_buffer("scales_zeros", torch.stack([scale16.t(), offset.t().to(torch.bfloat16)], -1).contiguous())
            module.register_buffer("zero", zero.to(torch.uint8).contiguous())
        else:
            module.register_buffer("qweight", codes.to(torch.uint8).contiguous())
            module.register_buffer("scale", scale16.contiguous())
            module.register_buffer("zero", zero.to(torch.uint8).contiguous())
        if bias is not None:
            module.bias = bias.detach().float().clone()
        return module

    def unpack(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The exact (codes uint8 [out, in], scale float32 [out, groups], zero uint8 [out, groups])."""
        if self.layout == "int8":
            codes = (self.qweight.to(torch.int16) + 128).to(torch.uint8)
            return codes, self.scale.float()[:, None], torch.full((self.out_features, 1), 128, dtype=torch.uint8)
        if self.layout == "int4":
            nibbles = torch.stack([self.qweight & 15, self.qweight >> 4], -1).flatten()
            codes = torch.empty(self.out_features * self.in_features, dtype=torch.uint8)
            codes[int4_layout(self.out_features, self.in_features)] = nibbles
            return codes.view(self.out_features, self.in_features), self.scales_zeros[..., 0].t().float(), self.zero
        return self.qweight, self.scale.float(), self.zero

    def dequantized_weight(self) -> torch.Tensor:
        codes, scale, zero = self.unpack()
        if self.layout == "int4":  # the kernel's own arithmetic: (u - 8)·s + offset, offset rounded to bf16
            rows, cols = codes.shape
            sz = self.scales_zeros.float()
            q = (codes.float().view(rows, -1, cols // self.groups) - 8) * sz[..., 0].t()[..., None]
            return (q + sz[..., 1].t()[..., None]).view(rows, cols)
        return dequantize(codes, scale, zero)

    def logical_parameters(self) -> tuple[int, int]:
        """(total, non-zero) weights as a float Linear would count them (profile.count_parameters)."""
        codes, _, zero = self.unpack()
        g = self.in_features // zero.shape[1]
        nonzero = int((codes.view(self.out_features, -1, g) != zero[..., None]).sum())
        total = self.in_features * self.out_features
        if self.bias is not None:
            total, nonzero = total + self.bias.numel(), nonzero + int(self.bias.count_nonzero())
        return total, nonzero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = x.shape, x.dtype
        x = x.reshape(-1, self.in_features)
        if self.act_bits == 8:
            xf = x.float()
            xs = xf.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127
            xq = torch.round(xf / xs).to(torch.int8)
            y = torch._int_mm(xq, self.qweight.t()).float() * xs * self.scale.float()
        elif self.layout == "int8":
            with single_thread_if(x.shape[0] <= SINGLE_THREAD_ROWS):
                y = torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16), self.qweight, self.scale)
        elif self.layout == "int4":
            with single_thread_if(x.shape[0] <= SINGLE_THREAD_ROWS):
                y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), self.qweight, self.kernel_group,
                                                               self.scales_zeros)
        else:
            y = x.float() @ self.dequantized_weight().t()
        y = y.to(dtype)
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        act = f", act_bits={self.act_bits}" if self.act_bits else ""
        return (f"in={self.in_features}, out={self.out_features}, bits={self.bits}, group_size={self.group_size}, "
                f"symmetric={self.symmetric}, layout={self.layout}{act}")


def replace_with_quant(root: nn.Module, path: str, codes, scale, zero, bits: int, act_bits: int | None = None,
                       group_size: int | None = None) -> QuantLinear:
    """Swap the projection at `path` for a QuantLinear holding the given codes (bias kept)."""
    old = get_module(root, path)
    new = QuantLinear.from_codes(codes, scale, zero, bits, getattr(old, "bias", None), act_bits, group_size)
    set_module(root, path, new)
    return new
