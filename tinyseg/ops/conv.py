"""2-D convolution (cross-correlation, as in every DL framework) via im2col + GEMM.

Shapes: x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, Ho, Wo) with Ho = (H + 2p - kh) // s + 1.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from . import gpu
from .im2col import col2im, crop2d, im2col, output_size, pad2d


def check_conv_shapes(x, weight, bias, in_axis, name):
    if x.ndim != 4:
        raise ValueError(f"{name}: input must be (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4 or weight.shape[in_axis] != x.shape[1]:
        raise ValueError(f"{name}: weight shape {weight.shape} does not fit an input with "
                         f"{x.shape[1]} channels")
    if bias is not None and bias.shape != (weight.shape[1 - in_axis],):
        raise ValueError(f"{name}: bias shape {bias.shape}, expected ({weight.shape[1 - in_axis]},)")


def matmul_each(w, b):
    """w @ b[n] for every n: (P, K) and (N, K, L) -> (N, P, L).

    One GEMM per image. (NumPy's broadcasting matmul would not call BLAS
    when one operand is shared across the batch; this loop runs over
    images, never over pixels.)
    """
    xp = get_array_module(b)
    out = xp.empty((b.shape[0], w.shape[0], b.shape[2]), dtype=b.dtype)
    for n in range(b.shape[0]):
        xp.matmul(w, b[n], out=out[n])
    return out


def sum_over_batch(a, b):
    """sum_n a[n] @ b[n]^T for (N, P, L) and (N, Q, L) arrays -> (P, Q).

    Computed as (sum_n b[n] @ a[n]^T)^T: with the long L axis as the reduction,
    BLAS is several times faster when the wide operand comes first.
    """
    total = get_array_module(a).zeros((b.shape[1], a.shape[1]), dtype=a.dtype)
    for n in range(a.shape[0]):
        total += b[n] @ a[n].T
    return total.T


class Conv2d(Function):
    def __init__(self, stride=1, padding=0):
        if stride < 1 or padding < 0:
            raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias=None):
        check_conv_shapes(x, weight, bias, in_axis=1, name="conv2d")
        c_out, _, kh, kw = weight.shape
        s, p = self.stride, self.padding
        out_h, out_w = output_size(x.shape[2], kh, s, p), output_size(x.shape[3], kw, s, p)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {x.shape[2:]}")
        if gpu.on_gpu(x):
            return gpu.conv.conv2d_forward(self, x, weight, bias, out_h, out_w)
        x_padded = pad2d(x, p)
        cols = im2col(x_padded, kh, kw, s, out_h, out_w)          # (N, K, L), K = C_in*kh*kw
        y = matmul_each(weight.reshape(c_out, -1), cols)          # (N, C_out, L)
        if bias is not None:
            y += bias[:, None]
        self.cols, self.weight, self.padded_shape = cols, weight, x_padded.shape
        self.has_bias = bias is not None
        return y.reshape(x.shape[0], c_out, out_h, out_w)

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.conv.conv2d_backward(self, gy)
        n, c_out, out_h, out_w = gy.shape
        kh, kw = self.weight.shape[2:]
        gy = gy.reshape(n, c_out, out_h * out_w)
        w2 = self.weight.reshape(c_out, -1)
        gx = gw = gb = None
        if self.needs_grad[0]:
            # dcols = W^T dY, then every column entry flows back to the pixel it came from
            gcols = matmul_each(w2.T, gy)
            gx = crop2d(col2im(gcols, self.padded_shape, kh, kw, self.stride, out_h, out_w), self.padding)
        if self.needs_grad[1]:
            # dW = sum_n dY[n] cols[n]^T: one GEMM per image, BLAS reads cols[n]^T in place
            gw = sum_over_batch(gy, self.cols).reshape(self.weight.shape)
        if self.has_bias and self.needs_grad[2]:
            gb = gy.sum(axis=(0, 2))  # the bias is added at every position of every image
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding)(*inputs)


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
        self.x, self.weight, self.full_shape = x, weight, (n, c_out, full_h, full_w)
        self.has_bias = bias is not None
        cols = matmul_each(weight.reshape(c_in, -1).T, x.reshape(n, c_in, h * w))  # (N, C_out*kh*kw, H*W)
        y = crop2d(col2im(cols, self.full_shape, kh, kw, s, h, w), p)
        if bias is not None:
            y = y + bias[:, None, None]
        return get_array_module(y).ascontiguousarray(y)

    def backward(self, gy):
        if gpu.on_gpu(gy):
            return gpu.conv.conv_transpose2d_backward(self, gy)
        n, c_in, h, w = self.x.shape
        kh, kw = self.weight.shape[2:]
        # Pad dY back to the full canvas and read it with the windows the forward wrote through.
        gcols = im2col(pad2d(gy, self.padding), kh, kw, self.stride, h, w)  # (N, C_out*kh*kw, H*W)
        gx = gw = gb = None
        if self.needs_grad[0]:
            gx = matmul_each(self.weight.reshape(c_in, -1), gcols).reshape(self.x.shape)
        if self.needs_grad[1]:
            # dW = sum_n x[n] gcols[n]^T
            gw = sum_over_batch(self.x.reshape(n, c_in, h * w), gcols).reshape(self.weight.shape)
        if self.has_bias and self.needs_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d(stride, padding)(*inputs)
