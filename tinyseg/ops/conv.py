"""2-D convolution (cross-correlation, as in every DL framework) via im2col + GEMM.

Shapes: x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, Ho, Wo) with Ho = (H + 2p - kh) // s + 1.

Memory: between forward and backward a convolution keeps only its input, as
PyTorch does. The column matrix (kh*kw times the
input: 9x for a 3x3 kernel) is rebuilt by im2col in backward for the weight
gradient, and the same buffer then takes dcols. The extra im2col pass costs about
5-8% of a training step on two CPU cores; it cuts the small preset's step from
91 to 51 MB and the paper preset's (one 400x500 image) from 2.7 to 1.5 GiB.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from . import gpu
from .cpu import layout
from .im2col import col2im, im2col, output_size


def check_conv_shapes(x, weight, bias, in_axis, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4 or weight.shape[in_axis] != x.shape[1]:
        raise ValueError(f"{name}: weight shape {weight.shape} does not fit an input with "
                         f"{x.shape[1]} channels")
    if bias is not None and bias.shape != (weight.shape[1 - in_axis],):
        raise ValueError(f"{name}: bias shape {bias.shape}, expected ({weight.shape[1 - in_axis]},)")


def swap_batch(a):
    """(A, B, L) -> (B, A, L), contiguous: between the (N, C, L) layout of feature maps and
    the (C, N, L) layout in which one GEMM covers the whole batch (no copy when N = 1)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def grad_weight(a, b):
    """a @ b^T for (P, M) and (Q, M) with a long M axis, computed as (b @ a^T)^T: with the
    long axis as the reduction, BLAS is several times faster when the wide operand comes first."""
    return (b @ a.T).T


class Conv2d(Function):
    """``relu=True`` fuses the ReLU that follows most convolutions: relu(conv2d(x) + b) is
    written in the same pass that moves the GEMM result into the (N, C, H, W) layout and
    adds the bias, and backward masks the output gradient in the pass that moves it back.
    The op then keeps its output (the ReLU's mask) besides its input."""

    def __init__(self, stride=1, padding=0, relu=False):
        if stride < 1 or padding < 0:
            raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
        self.stride, self.padding, self.relu = stride, padding, relu

    def forward(self, x, weight, bias=None):
        check_conv_shapes(x, weight, bias, in_axis=1, name="conv2d")
        c_out, _, kh, kw = weight.shape
        s, p = self.stride, self.padding
        out_h, out_w = output_size(x.shape[2], kh, s, p), output_size(x.shape[3], kw, s, p)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {x.shape[2:]}")
        if gpu.on_gpu(x):
            return gpu.conv.conv2d_forward(self, x, weight, bias, out_h, out_w)
        n, k, length = x.shape[0], x.shape[1] * kh * kw, out_h * out_w
        cols = im2col(x, kh, kw, s, p, out_h, out_w).reshape(k, n * length)    # (K, N*L), K = C_in*kh*kw
        # One GEMM for the whole batch, then (C_out, N, L) -> (N, C_out, L) with bias and ReLU
        z = (weight.reshape(c_out, -1) @ cols).reshape(c_out, n, length)
        del cols
        y = layout.to_batch_major(z, bias, self.relu).reshape(n, c_out, out_h, out_w)
        self.x, self.weight, self.has_bias = x, weight, bias is not None   # cols are not kept
        self.y = y if self.relu else None
        return y

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.conv.conv2d_backward(self, gy)
        n, c_out, out_h, out_w = gy.shape
        kh, kw = self.weight.shape[2:]
        k = self.weight[0].size                                                   # C_in*kh*kw
        mask = None if self.y is None else self.y.reshape(n, c_out, -1)
        # dZ in the GEMM layout (C_out, N*L), through the ReLU when fused; its row sums are dBias
        gy, channel_sums = layout.to_channel_major(gy.reshape(n, c_out, out_h * out_w), mask)
        gy = gy.reshape(c_out, -1)
        gx = gw = gb = None
        buffer = None   # one column-sized buffer for all of backward: cols for dW, then dcols for dx
        if self.needs_grad[1]:
            cols = im2col(self.x, kh, kw, self.stride, self.padding, out_h, out_w).reshape(k, n * out_h * out_w)
            gw = grad_weight(gy, cols).reshape(self.weight.shape)   # dW = dY cols^T
            if cols.dtype == np.result_type(self.weight, gy):
                buffer = cols
        if self.needs_grad[0]:
            # dcols = W^T dY, then every column entry flows back to the pixel it came from
            gcols = np.matmul(self.weight.reshape(c_out, -1).T, gy, out=buffer).reshape(k, n, out_h * out_w)
            gx = col2im(gcols, self.x.shape, kh, kw, self.stride, self.padding, out_h, out_w)
        if self.has_bias and self.needs_grad[2]:
            gb = channel_sums   # the bias is added at every position of every image
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def conv2d(x, weight, bias=None, stride=1, padding=0, relu=False):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding, relu)(*inputs)


class ConvTranspose2d(Function):
    """The adjoint of convolution: each input pixel scatters a weighted kernel onto the output.

    x (N, C_in, H, W), weight (C_in, C_out, kh, kw); output (N, C_out, Ho, Wo) with
    Ho = (H - 1) * s - 2p + kh. Forward is conv2d's input-gradient computation,
    backward with respect to x is an ordinary convolution of dY with the same weights.
    """

    def __init__(self, stride=1, padding=0):
        if stride < 1 or padding < 0:
            raise ValueError(f"conv_transpose2d: stride must be >= 1 and padding >= 0, "
                             f"got {stride}, {padding}")
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        check_conv_shapes(x, weight, bias, in_axis=0, name="conv_transpose2d")
        n, c_in, h, w = x.shape
        c_out, kh, kw = weight.shape[1:]
        s, p = self.stride, self.padding
        full_h, full_w = (h - 1) * s + kh, (w - 1) * s + kw
        if full_h - 2 * p < 1 or full_w - 2 * p < 1:
            raise ValueError(f"conv_transpose2d: padding {p} leaves no output for input {x.shape[2:]}")
        if gpu.on_gpu(x):
            return gpu.conv.conv_transpose2d_forward(self, x, weight, bias)
        # Keep x itself, not its (C_in, N*H*W) copy.
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        x = swap_batch(x.reshape(n, c_in, h * w)).reshape(c_in, -1)          # (C_in, N*H*W)
        cols = (weight.reshape(c_in, -1).T @ x).reshape(c_out * kh * kw, n, h * w)  # (C_out*kh*kw, N, H*W)
        y = col2im(cols, (n, c_out, full_h - 2 * p, full_w - 2 * p), kh, kw, s, p, h, w)
        if bias is not None:
            y += bias[:, None, None]
        return y

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.conv.conv_transpose2d_backward(self, gy)
        n, c_in, h, w = self.x.shape
        c_out, kh, kw = self.weight.shape[1:]
        # Read dY with the windows the forward wrote through (the padding border reads as 0).
        gcols = im2col(gy, kh, kw, self.stride, self.padding, h, w).reshape(c_out * kh * kw, n * h * w)
        gx = gw = gb = None
        if self.needs_grad[0]:
            gx = swap_batch((self.weight.reshape(c_in, -1) @ gcols).reshape(c_in, n, h * w)).reshape(self.x.shape)
        if self.needs_grad[1]:
            x = swap_batch(self.x.reshape(n, c_in, h * w)).reshape(c_in, -1)
            gw = grad_weight(x, gcols).reshape(self.weight.shape)        # dW = x gcols^T
        if self.has_bias and self.needs_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d(stride, padding)(*inputs)
