"""2-D convolution (cross-correlation, as in every DL framework) via im2col + GEMM.

Shapes: x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out,),
output (N, C_out, Ho, Wo) with Ho = (H + 2p - kh) // s + 1 (``output_size``).

im2col gathers, for every output position of every image, the C*kh*kw input values
under the kernel,

    cols[(c, i, j), n, (oh, ow)] = x[n, c, oh*s + i - p, ow*s + j - p]   (0 in the padding)

so that the convolution is one matrix product W (C_out, C*kh*kw) @ cols; col2im is
its adjoint. The GPU keeps cols as (C*kh*kw, N*L), one cuBLAS GEMM for the whole batch
(``gpu/conv.py``), built for part of the batch (or of an image) at a time so that no such
scratch matrix exceeds ``GPU_COLUMN_BUDGET_BYTES``.

The CPU has three paths (``Conv2d.forward_cpu``):

* 3x3, stride 1 (every VGG convolution): a direct convolution (``cpu/direct.py``) with no
  column matrix at all, four output channels per pass over long flat bands of rows;
* other stride-1 convolutions with a kernel larger than 1x1 (H-ReNet's 7x7 conv6): one GEMM per
  kernel row over the whole batch (``cpu/row_gemm.py``), on windows copied along the rows
  only (kw copies of the input, where im2col makes kh*kw);
* otherwise im2col + GEMM, one image and one band of output rows at a time
  (``cpu/im2col.py``): the band's columns fit in ``COLUMN_BUDGET_BYTES`` of workspace
  that is reused from call to call, and each GEMM writes straight into the image's
  (C_out, Ho*Wo) output, so there is neither a batch-sized column matrix nor a layout pass.

Between forward and backward a convolution keeps only its input (and, with a fused
ReLU, its output), as PyTorch does: backward rebuilds the columns band by band.
Transposed convolutions with long kernel rows also have a direct CPU kernel.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import cpu_runtime
from ..autograd import Function
from . import gpu
from .cpu import direct, epilogue, row_gemm, transposed_conv, workspace
from .cpu import im2col as cpu_im2col

# The most bytes of im2col columns one convolution builds at a time on the CPU, per buffer
# and thread (bands run side by side, one per thread; backward holds two buffers: the
# columns and their gradient). Larger convolutions work band by band; a small bound keeps
# a step's peak memory near that of its activations.
COLUMN_BUDGET_BYTES = 4 * 2 ** 20

# Every 3x3, stride-1 convolution runs on the CPU's direct kernel: forward and backward it
# beats im2col + GEMM (numpy's BLAS) from the small preset's 1 -> 8 channels at 256x256 to
# the paper preset's 512 -> 512 at 50x62, where the two are level (docs/03-convolution.md has
# the measurements). False sends them to the GEMM path, as every other convolution.
DIRECT_3X3 = True

# Other stride-1 convolutions with a kernel larger than 1x1 run as one GEMM per kernel row when
# their row windows fit ``row_gemm.ROW_WINDOWS_BUDGET_BYTES``: conv6's forward and backward took
# 6.5 ms against 9.8 ms on the banded im2col path (4x64x16x16, 7x7), and 4 ms against 7.4 ms on
# its 8x10 map at batch 8. False sends them to the bands.
ROW_GEMM = True

# Transposed convolutions with kernel rows at least this long (H-ReNet's 64x64 upsampling)
# run on the CPU's direct kernel: its kernel rows are long vectorised multiply-adds, where
# the GEMM would build C_out*kh*kw columns per input pixel for col2im to add up.
DIRECT_TRANSPOSE_MIN_KERNEL_WIDTH = 16

# On the GPU: the most bytes one scratch matrix of a convolution (its columns, or a GEMM
# operand in the columns' layout) may take; larger ones are built and used a chunk of
# positions at a time. A GPU GEMM wants large operands, hence a larger bound than the CPU's.
GPU_COLUMN_BUDGET_BYTES = 256 * 2 ** 20


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

    def direct_cpu(self, x, weight):
        """Whether the CPU runs this convolution with the direct kernel: 3x3, stride 1, padding <= 2."""
        return DIRECT_3X3 and weight.shape[2:] == (3, 3) and self.stride == 1 and self.padding <= 2

    def row_gemm_cpu(self, x, weight):
        """Whether the CPU runs this convolution as one GEMM per kernel row (``cpu/row_gemm.py``):
        stride 1, a kernel larger than 1x1 and padding below its size, with the row windows of the
        input and of the output gradient (for the input gradient) within their budget."""
        kernel, p = weight.shape[2:], self.padding
        out_shape = (x.shape[0], weight.shape[0], *self.output_hw(x, weight, None))
        itemsize = np.result_type(x, weight).itemsize
        return (ROW_GEMM and self.stride == 1 and row_gemm.fits(x.shape, kernel, (p, p), itemsize)
                and row_gemm.fits(out_shape, kernel, (kernel[0] - 1 - p, kernel[1] - 1 - p), itemsize))

    def forward_cpu(self, x, weight, bias=None):
        out_h, out_w = self.output_hw(x, weight, bias)
        c_out, _, kh, kw = weight.shape
        if self.direct_cpu(x, weight):
            y = direct.conv3x3(x, weight, bias, self.padding, self.relu)
        elif self.row_gemm_cpu(x, weight):
            n, p = x.shape[0], self.padding
            y = np.ascontiguousarray(row_gemm.correlate(x, weight, (p, p)))
            y = epilogue.bias_relu(y.reshape(n, c_out, -1), bias, self.relu).reshape(n, c_out, out_h, out_w)
        else:
            n, length = x.shape[0], out_h * out_w
            x = np.ascontiguousarray(x)
            y = np.empty((n, c_out, length), dtype=np.result_type(x, weight))
            w = weight.reshape(c_out, -1)
            bands, nbytes = self.bands(x, weight, out_h, out_w, y.dtype)

            def forward_bands(share):
                # Y[b, :, band] = W @ cols(band), in this thread's own column buffer
                buffer = workspace.get("cols", nbytes, y.dtype)
                for b, row0, rows in share:
                    cols = self.columns(x, b, row0, rows, kh, kw, out_h, out_w, buffer)
                    np.matmul(w, cols, out=y[b, :, row0 * out_w:(row0 + rows) * out_w])

            cpu_runtime.run_parallel(functools.partial(forward_bands, share)
                                     for share in cpu_runtime.split(bands, cpu_runtime.threads()))
            y = epilogue.bias_relu(y, bias, self.relu).reshape(n, c_out, out_h, out_w)
        self.save(x=x, weight=weight, y=y if self.relu else None)
        return y

    def columns(self, x, b, row0, rows, kh, kw, out_h, out_w, buffer):
        """The im2col columns of a band, (C_in*kh*kw, rows*Wo): for a 1x1 kernel with stride 1 and
        no padding, the image itself (a view, no copy); otherwise built in ``buffer``."""
        if (kh, kw, self.stride, self.padding) == (1, 1, 1, 0):
            return x[b].reshape(x.shape[1], -1)[:, row0 * out_w:(row0 + rows) * out_w]
        return cpu_im2col.im2col_band(x, b, row0, rows, kh, kw, self.stride, self.padding, out_h, out_w, buffer)

    @staticmethod
    def bands(x, weight, out_h, out_w, dtype):
        """(image, first output row, rows) of the bands whose columns fit COLUMN_BUDGET_BYTES
        (one output row at least), at least as many bands as threads where the output has the
        rows, and the bytes of columns the largest band needs."""
        row_bytes = weight[0].size * out_w * np.dtype(dtype).itemsize
        bands_per_image = -(-cpu_runtime.threads() // max(1, x.shape[0]))
        rows = max(1, min(-(-out_h // bands_per_image), COLUMN_BUDGET_BYTES // row_bytes))
        bands = [(b, row0, min(rows, out_h - row0)) for b in range(x.shape[0]) for row0 in range(0, out_h, rows)]
        return bands, max(COLUMN_BUDGET_BYTES, rows * row_bytes)

    def forward_gpu(self, x, weight, bias=None):
        out_h, out_w = self.output_hw(x, weight, bias)
        x = gpu.contiguous(x)
        y = gpu.conv.conv2d_forward(x, weight, bias, self.stride, self.padding, out_h, out_w, self.relu,
                                    GPU_COLUMN_BUDGET_BYTES)
        self.save(x=x, weight=weight, y=y if self.relu else None)
        return y

    def backward_cpu(self, gy):
        n, c_out, out_h, out_w = gy.shape
        kh, kw = self.weight.shape[2:]
        if self.direct_cpu(self.x, self.weight) and self.padding == 1:
            # dZ (through the ReLU when fused) written once, padded by one, in the layout both
            # direct backward kernels read; its sums are dBias
            gzp, channel_sums = epilogue.mask_and_sum_padded(gy, self.y)
            gx, gw = direct.backward_padding_one(self.x, self.weight, gzp, self.needs_grad[0], self.needs_grad[1])
            gx = None if gx is None else gx.astype(self.x.dtype, copy=False)
            gw = None if gw is None else gw.astype(self.weight.dtype, copy=False)
            return with_bias_grad(self.needs_grad, gx, gw, lambda: channel_sums)
        mask = None if self.y is None else self.y.reshape(n, c_out, -1)
        # dZ, through the ReLU when fused, in the (N, C_out, L) layout of dY; its sums are dBias
        gz, channel_sums = epilogue.mask_and_sum(gy.reshape(n, c_out, out_h * out_w), mask)
        gx = gw = None
        if self.direct_cpu(self.x, self.weight):
            gz = gz.reshape(gy.shape)
            if self.needs_grad[1]:
                gw = direct.weight_grad(self.x, gz, self.padding).astype(self.weight.dtype, copy=False)
            if self.needs_grad[0]:
                gx = direct.input_grad(gz, self.weight, self.padding).astype(self.x.dtype, copy=False)
            return with_bias_grad(self.needs_grad, gx, gw, lambda: channel_sums)
        if self.row_gemm_cpu(self.x, self.weight):
            gz, p = gz.reshape(gy.shape), self.padding
            if self.needs_grad[1]:
                gw = row_gemm.weight_grad(self.x, gz, (p, p)).astype(self.weight.dtype, copy=False)
            if self.needs_grad[0]:
                gx = np.ascontiguousarray(row_gemm.input_grad(gz, self.weight, (p, p)), dtype=self.x.dtype)
            return with_bias_grad(self.needs_grad, gx, gw, lambda: channel_sums)
        # Band by band: dW += dZ_band cols_band^T, dcols_band = W^T dZ_band, dx += col2im(dcols_band).
        # Images run side by side, each thread summing its own share of dW (added up in a fixed
        # order after). The bands of one image stay in one thread: two of them may add onto the
        # same input rows, and the order of those additions must not depend on the threads'
        # timing, or two runs of the same training would differ in the last bits.
        w = self.weight.reshape(c_out, -1)
        dtype = np.result_type(self.x, self.weight)
        gx = np.zeros(self.x.shape, dtype=dtype) if self.needs_grad[0] else None
        bands, nbytes = self.bands(self.x, self.weight, out_h, out_w, dtype)
        one_by_one = (kh, kw, self.stride, self.padding) == (1, 1, 1, 0)

        def backward_bands(share):
            gw = np.zeros(w.shape, dtype=dtype) if self.needs_grad[1] else None
            cols_buffer = workspace.get("cols", nbytes, dtype)
            gcols_buffer = workspace.get("gcols", nbytes, dtype)
            for b, row0, rows in share:
                positions = slice(row0 * out_w, (row0 + rows) * out_w)
                gz_band = gz[b, :, positions]
                if gw is not None:
                    gw += grad_weight(gz_band, self.columns(self.x, b, row0, rows, kh, kw, out_h, out_w,
                                                            cols_buffer))
                if gx is not None and one_by_one:      # the bands' pixels are disjoint
                    np.matmul(w.T, gz_band, out=gx[b].reshape(w.shape[1], -1)[:, positions])
                elif gx is not None:
                    gcols = gcols_buffer[:w.shape[1] * gz_band.shape[1]].reshape(w.shape[1], -1)
                    np.matmul(w.T, gz_band, out=gcols)
                    cpu_im2col.col2im_band_add(gcols, gx, b, row0, rows, kh, kw, self.stride, self.padding, out_w)
            return gw

        images = cpu_runtime.split(range(n), cpu_runtime.threads())
        shares = [[band for band in bands if band[0] in share] for share in images]
        partial_gws = cpu_runtime.run_parallel(functools.partial(backward_bands, share) for share in shares)
        gw = sum(partial_gws[1:], partial_gws[0]).reshape(self.weight.shape) if self.needs_grad[1] else None
        return with_bias_grad(self.needs_grad, gx, gw, lambda: channel_sums)

    def backward_gpu(self, gy):
        needs = tuple(self.needs_grad) + (False,) * (3 - len(self.needs_grad))
        gx, gw, gb = gpu.conv.conv2d_backward(gy, self.x, self.y, self.weight, self.stride, self.padding, needs,
                                              GPU_COLUMN_BUDGET_BYTES)
        return with_bias_grad(self.needs_grad, gx, gw, lambda: gb)


def conv2d(x, weight, bias=None, stride=1, padding=0, relu=False):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding, relu)(*inputs)


class ConvTranspose2d(Function):
    """The adjoint of convolution: each input pixel scatters a weighted kernel onto the output.

    x (N, C_in, H, W), weight (C_in, C_out, kh, kw); output (N, C_out, Ho, Wo) with
    Ho = (H - 1) * s - 2p + kh. Forward is conv2d's input-gradient computation (GEMM,
    then col2im onto the output canvas; the padding crop is implicit); on the CPU, kernels
    with long rows (H-ReNet's 64x64 upsampling) skip the columns and paint each kernel row
    straight onto the output (``cpu/transposed_conv.py``). Backward: dx is an
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

    @staticmethod
    def direct_cpu(weight):
        """Whether the CPU runs this transposed convolution with the direct kernel."""
        return weight.shape[3] >= DIRECT_TRANSPOSE_MIN_KERNEL_WIDTH

    def forward_cpu(self, x, weight, bias=None):
        out_shape = self.output_shape(x, weight, bias)
        if self.direct_cpu(weight):
            self.save(x=x, weight=weight)
            return transposed_conv.conv_transpose2d(x, weight, bias, self.stride, self.padding, out_shape)
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
                                                 GPU_COLUMN_BUDGET_BYTES)

    def backward_cpu(self, gy):
        if self.direct_cpu(self.weight):
            gx = gw = None
            if self.needs_grad[0]:
                gx = transposed_conv.conv_transpose2d_input_grad(gy, self.weight, self.stride, self.padding, self.x.shape)
            if self.needs_grad[1]:
                gw = transposed_conv.conv_transpose2d_weight_grad(self.x, gy, self.stride, self.padding, self.weight.shape)
            return with_bias_grad(self.needs_grad, gx, gw, lambda: gy.sum(axis=(0, 2, 3)))
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
                                                        GPU_COLUMN_BUDGET_BYTES)
        return with_bias_grad(self.needs_grad, gx, gw, lambda: gb)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0):
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d(stride, padding)(*inputs)
