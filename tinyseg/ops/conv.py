"""2-D convolution (cross-correlation, as in every DL framework) via im2col + GEMM.

Shapes: x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, Ho, Wo) with Ho = (H + 2p - kh) // s + 1 (``output_size``).

im2col gathers, for every output position of every image, the C*kh*kw input values
under the kernel,

    cols[(c, i, j), n, (oh, ow)] = x[n, c, oh*s + i - p, ow*s + j - p]   (0 in the padding)

so that the convolution is one matrix product W (C_out, C*kh*kw) @ cols; col2im is
its adjoint. Both devices keep cols as (C*kh*kw, N, L), one GEMM for the whole batch
(``cpu/im2col.py``, ``gpu/conv.py``). On the GPU the columns are built for part of the
batch (or of an image) at a time, so that no such scratch matrix exceeds
``COLUMN_BUDGET_BYTES``.

Between forward and backward a convolution keeps only its input (and, with a fused
ReLU, its output), as PyTorch does: the column matrix is kh*kw times the input, so
backward rebuilds it with one more im2col pass rather than keeping it.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from . import gpu
from .cpu import im2col as cpu_im2col
from .cpu import layout

# Most bytes one scratch matrix of a convolution (its columns, or a GEMM operand in the
# columns' layout) may take; larger ones are built and used a chunk of positions at a time.
COLUMN_BUDGET_BYTES = 256 * 2 ** 20


def output_size(size, kernel, stride, padding=0):
    """Output length of a sliding window (floor mode: a partial last window is dropped)."""
    return (size + 2 * padding - kernel) // stride + 1


def check_conv_shapes(x, weight, bias, in_axis, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4 or weight.shape[in_axis] != x.shape[1]:
        raise ValueError(f"{name}: weight shape {weight.shape} does not fit an input with "
                         f"{x.shape[1]} channels")
    if bias is not None and bias.shape != (weight.shape[1 - in_axis],):
        raise ValueError(f"{name}: bias shape {bias.shape}, expected ({weight.shape[1 - in_axis]},)")


def check_stride_padding(stride, padding, name):
    if stride < 1 or padding < 0:
        raise ValueError(f"{name}: stride must be >= 1 and padding >= 0, got {stride}, {padding}")


def swap_batch(a):
    """(A, B, L) -> (B, A, L), contiguous: between the (N, C, L) layout of feature maps and
    the (C, N, L) layout in which one GEMM covers the whole batch (no copy when N = 1)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


def grad_weight(a, b):
    """a @ b^T for (P, M) and (Q, M) with a long M axis, computed as (b @ a^T)^T: with the
    long axis as the reduction, BLAS is several times faster when the wide operand comes first."""
    return (b @ a.T).T


def with_bias_grad(needs_grad, gx, gw, bias_grad):
    """(dx, dW) for an op called without a bias, (dx, dW, d bias) with one; ``bias_grad()``
    computes d bias, only when it is needed."""
    if len(needs_grad) == 2:
        return gx, gw
    return gx, gw, bias_grad() if needs_grad[2] else None


class Conv2d(Function):
    """Inputs (x, weight[, bias]).

    ``relu=True`` fuses the ReLU that follows most convolutions: relu(conv2d(x) + b) is
    written in the same pass that moves the GEMM result into the (N, C, H, W) layout and
    adds the bias, and backward masks the output gradient in the pass that moves it back.
    The op then keeps its output y (the ReLU's mask; None without the ReLU).

    Backward, with Z = W cols the pre-activation: dZ = dY (masked where y <= 0 when fused),
    dW = dZ cols^T, dcols = W^T dZ and dx = col2im(dcols), d bias = sum of dZ over
    images and positions.
    """

    saves = ("x", "weight", "y")

    def __init__(self, stride=1, padding=0, relu=False):
        check_stride_padding(stride, padding, "conv2d")
        self.stride, self.padding, self.relu = stride, padding, relu

    def output_hw(self, x, weight, bias):
        check_conv_shapes(x, weight, bias, in_axis=1, name="conv2d")
        kh, kw = weight.shape[2:]
        s, p = self.stride, self.padding
        out_h, out_w = output_size(x.shape[2], kh, s, p), output_size(x.shape[3], kw, s, p)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {x.shape[2:]}")
        return out_h, out_w

    def forward_cpu(self, x, weight, bias=None):
        out_h, out_w = self.output_hw(x, weight, bias)
        c_out, _, kh, kw = weight.shape
        n, k, length = x.shape[0], x.shape[1] * kh * kw, out_h * out_w
        cols = cpu_im2col.im2col(x, kh, kw, self.stride, self.padding, out_h, out_w).reshape(k, n * length)
        # One GEMM for the whole batch, then (C_out, N, L) -> (N, C_out, L) with bias and ReLU
        z = (weight.reshape(c_out, -1) @ cols).reshape(c_out, n, length)
        del cols
        y = layout.to_batch_major(z, bias, self.relu).reshape(n, c_out, out_h, out_w)
        self.save(x=x, weight=weight, y=y if self.relu else None)
        return y

    def forward_gpu(self, x, weight, bias=None):
        out_h, out_w = self.output_hw(x, weight, bias)
        x = gpu.contiguous(x)
        y = gpu.conv.conv2d_forward(x, weight, bias, self.stride, self.padding, out_h, out_w, self.relu,
                                    COLUMN_BUDGET_BYTES)
        self.save(x=x, weight=weight, y=y if self.relu else None)
        return y

    def backward_cpu(self, gy):
        n, c_out, out_h, out_w = gy.shape
        kh, kw = self.weight.shape[2:]
        k = self.weight[0].size                                                   # C_in*kh*kw
        mask = None if self.y is None else self.y.reshape(n, c_out, -1)
        # dZ in the GEMM layout (C_out, N*L), through the ReLU when fused; its row sums are dBias
        gz, channel_sums = layout.to_channel_major(gy.reshape(n, c_out, out_h * out_w), mask)
        gz = gz.reshape(c_out, -1)
        gx = gw = None
        buffer = None   # one column-sized buffer for all of backward: cols for dW, then dcols for dx
        if self.needs_grad[1]:
            cols = cpu_im2col.im2col(self.x, kh, kw, self.stride, self.padding, out_h, out_w).reshape(k, -1)
            gw = grad_weight(gz, cols).reshape(self.weight.shape)
            if cols.dtype == np.result_type(self.weight, gz):
                buffer = cols
        if self.needs_grad[0]:
            gcols = np.matmul(self.weight.reshape(c_out, -1).T, gz, out=buffer).reshape(k, n, out_h * out_w)
            gx = cpu_im2col.col2im(gcols, self.x.shape, kh, kw, self.stride, self.padding, out_h, out_w)
        return with_bias_grad(self.needs_grad, gx, gw, lambda: channel_sums)

    def backward_gpu(self, gy):
        needs = tuple(self.needs_grad) + (False,) * (3 - len(self.needs_grad))
        gx, gw, gb = gpu.conv.conv2d_backward(gy, self.x, self.y, self.weight, self.stride, self.padding, needs,
                                              COLUMN_BUDGET_BYTES)
        return with_bias_grad(self.needs_grad, gx, gw, lambda: gb)


def conv2d(x, weight, bias=None, stride=1, padding=0, relu=False):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding, relu)(*inputs)


class ConvTranspose2d(Function):
    """The adjoint of convolution: each input pixel scatters a weighted kernel onto the output.

    x (N, C_in, H, W), weight (C_in, C_out, kh, kw); output (N, C_out, Ho, Wo) with
    Ho = (H - 1) * s - 2p + kh. Forward is conv2d's input-gradient computation (GEMM,
    then col2im onto the output canvas; the padding crop is implicit). Backward: dx is an
    ordinary convolution of dY with the same weights (W im2col(dY)), dW = x im2col(dY)^T,
    d bias = sum of dY over images and positions.
    """

    saves = ("x", "weight")

    def __init__(self, stride=1, padding=0):
        check_stride_padding(stride, padding, "conv_transpose2d")
        self.stride, self.padding = stride, padding

    def output_shape(self, x, weight, bias):
        check_conv_shapes(x, weight, bias, in_axis=0, name="conv_transpose2d")
        (n, _, h, w), (c_out, kh, kw) = x.shape, weight.shape[1:]
        s, p = self.stride, self.padding
        shape = (n, c_out, (h - 1) * s + kh - 2 * p, (w - 1) * s + kw - 2 * p)
        if shape[2] < 1 or shape[3] < 1:
            raise ValueError(f"conv_transpose2d: padding {p} leaves no output for input {x.shape[2:]}")
        return shape

    def forward_cpu(self, x, weight, bias=None):
        out_shape = self.output_shape(x, weight, bias)
        n, c_in, h, w = x.shape
        c_out, kh, kw = weight.shape[1:]
        self.save(x=x, weight=weight)                     # x itself, not its (C_in, N*H*W) copy
        x = swap_batch(x.reshape(n, c_in, h * w)).reshape(c_in, -1)
        cols = (weight.reshape(c_in, -1).T @ x).reshape(c_out * kh * kw, n, h * w)
        y = cpu_im2col.col2im(cols, out_shape, kh, kw, self.stride, self.padding, h, w)
        if bias is not None:
            y += bias[:, None, None]
        return y

    def forward_gpu(self, x, weight, bias=None):
        out_shape = self.output_shape(x, weight, bias)
        x = gpu.contiguous(x)
        self.save(x=x, weight=weight)
        return gpu.conv.conv_transpose2d_forward(x, weight, bias, self.stride, self.padding, out_shape,
                                                 COLUMN_BUDGET_BYTES)

    def backward_cpu(self, gy):
        n, c_in, h, w = self.x.shape
        c_out, kh, kw = self.weight.shape[1:]
        # Read dY with the windows the forward wrote through (the padding border reads as 0).
        gcols = cpu_im2col.im2col(gy, kh, kw, self.stride, self.padding, h, w).reshape(c_out * kh * kw, -1)
        gx = gw = None
        if self.needs_grad[0]:
            gx = swap_batch((self.weight.reshape(c_in, -1) @ gcols).reshape(c_in, n, h * w))
            gx = gx.reshape(self.x.shape)
        if self.needs_grad[1]:
            x = swap_batch(self.x.reshape(n, c_in, h * w)).reshape(c_in, -1)
            gw = grad_weight(x, gcols).reshape(self.weight.shape)
        return with_bias_grad(self.needs_grad, gx, gw, lambda: gy.sum(axis=(0, 2, 3)))

    def backward_gpu(self, gy):
        needs = tuple(self.needs_grad) + (False,) * (3 - len(self.needs_grad))
        gx, gw, gb = gpu.conv.conv_transpose2d_backward(gy, self.x, self.weight, self.stride, self.padding, needs,
                                                        COLUMN_BUDGET_BYTES)
        return with_bias_grad(self.needs_grad, gx, gw, lambda: gb)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d(stride, padding)(*inputs)
