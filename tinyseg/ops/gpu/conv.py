"""The GPU halves of conv2d and conv_transpose2d: the kernels of cuda/conv.cu around cuBLAS GEMMs.

The column matrix is laid out as on the CPU, (C*kh*kw, N*L) with L = out_h * out_w, so a
convolution is ONE GEMM W (C_out, C*kh*kw) @ cols, and its weight gradient one more,
dZ (C_out, N*L) @ cols^T; the input gradient reads W^T through cuBLAS's transpose flag
(``gemm``), so the weight is never copied. The columns are built for a range of the N*L
positions at a time (``chunks``), so that no scratch matrix (columns, GEMM result, or the
gradient in the GEMM layout) is larger than a budget (``GPU_COLUMN_BUDGET_BYTES`` in
``tinyseg/ops/conv.py``); a chunk that is exactly one image uses that image's slice of
the maps directly.

Launches: im2col and the two layout moves (``columns_to_maps``, ``maps_to_columns``) run a
2-D grid of 1-D blocks of 256 threads, (ceil(positions / 256), ceil(rows / rows_per_thread)):
one thread per position and group of rows; col2im runs one thread per pixel column of
each group of COL2IM_ROWS image rows of the images a chunk touches (a gather: no atomics),
grid ceil(threads / 256) x block 256.
"""
from __future__ import annotations

from numpy import int32, int64, result_type

from ...backend import get_array_module
from . import THREADS, blocks, contiguous, empty, gemm, kernel
from .elementwise import bias_relu

ROWS_PER_THREAD = 16   # rows (or channels) one thread of im2col and the layout moves walks through
COL2IM_ROWS = 4        # image rows one thread of col2im walks down
MAX_GRID_Y = 65535     # CUDA's limit on gridDim.y


def chunks(total, rows, length, row, itemsize, budget):
    """Ranges [first, last) that split ``total`` positions (N images of ``length``, in rows of
    ``row``) so that a (rows, last - first) matrix of ``itemsize`` bytes fits in ``budget``
    bytes: whole images when one fits, else whole rows of windows, else single positions."""
    most = max(1, budget // (rows * itemsize))
    if most >= length:
        step = most // length * length
    elif most >= row:
        step = most // row * row
    else:
        step = most
    return [(first, min(total, first + step)) for first in range(0, total, step)]


def column_buffer(like, size):
    """A flat scratch buffer of ``size`` elements for a chunk's matrices (tests watch its size)."""
    return empty(like, (size,))


class Scratch:
    """(rows, positions) matrices for the chunks of one call, all in one buffer, allocated on
    first use for the largest chunk."""

    def __init__(self, like, rows, spans):
        self.like, self.rows, self.buffer = like, rows, None
        self.most = max((last - first for first, last in spans), default=0)

    def matrix(self, positions):
        if self.buffer is None:
            self.buffer = column_buffer(self.like, self.rows * self.most)
        return self.buffer[:self.rows * positions].reshape(self.rows, positions)


def whole_image(first, last, length):
    """The image index when [first, last) is exactly one image's positions, else None."""
    return first // length if first % length == 0 and last - first == length else None


def pointwise(kh, kw, stride, padding):
    """A 1x1 convolution with stride 1 and no padding: an image's columns are the image itself."""
    return kh == kw == stride == 1 and padding == 0


def _grid_2d(positions, rows):
    per_thread = max(ROWS_PER_THREAD, -(-rows // MAX_GRID_Y))
    return (blocks(positions), -(-rows // per_thread)), per_thread


def im2col(image, cols, first, kh, kw, stride, padding, out_h, out_w):
    """cols (C*kh*kw, P) <- the columns of positions first ... first + P - 1 of image (N, C, H, W)."""
    _, c, h, w = image.shape
    positions = cols.shape[1]
    grid, per_thread = _grid_2d(positions, cols.shape[0])
    kernel("conv.cu", "im2col", image.dtype)(
        grid, (THREADS,), (image, cols, int64(first), int64(positions), int32(per_thread), int32(c), int32(h),
                           int32(w), int32(kh), int32(kw), int32(stride), int32(padding), int32(out_h),
                           int32(out_w)))
    return cols


def col2im(cols, image, first, kh, kw, stride, padding, out_h, out_w):
    """The adjoint of ``im2col`` for one chunk of columns: every pixel of the images the chunk
    touches receives the sum of the entries read from it, written by the first chunk that
    reaches its image and added by later ones. Chunks must come in order of position."""
    _, c, h, w = image.shape
    positions = cols.shape[1]
    length = out_h * out_w
    first_image, last_image = first // length, (first + positions - 1) // length
    threads = (last_image - first_image + 1) * c * -(-h // COL2IM_ROWS) * w
    kernel("conv.cu", "col2im", cols.dtype)(
        (blocks(threads),), (THREADS,), (cols, image, int64(first), int64(positions), int64(first_image),
                                         int64(threads), int32(COL2IM_ROWS), int32(c), int32(h), int32(w),
                                         int32(kh), int32(kw), int32(stride), int32(padding), int32(out_h),
                                         int32(out_w)))
    return image


def columns_to_maps(z, y, first, bias=None, relu=False):
    """y (N, C, ...) at positions first ... <- z (C, P), plus bias[c], then the ReLU when ``relu``."""
    channels, positions = z.shape
    grid, per_thread = _grid_2d(positions, channels)
    bias_array = z if bias is None else bias    # z: a placeholder, not read
    kernel("conv.cu", "columns_to_maps", z.dtype)(
        grid, (THREADS,), (z, bias_array, y, int64(first), int64(positions), int32(channels),
                           int64(y.size // (y.shape[0] * channels)), int32(per_thread), int32(bias is not None),
                           int32(relu)))
    return y


def maps_to_columns(x, g, first, mask=None):
    """g (C, P) <- x (N, C, ...) at positions first ...; 0 where mask <= 0 when a mask is given."""
    channels, positions = g.shape
    grid, per_thread = _grid_2d(positions, channels)
    kernel("conv.cu", "maps_to_columns", x.dtype)(
        grid, (THREADS,), (x, x if mask is None else mask, g, int64(first), int64(positions), int32(channels),
                           int64(x.size // (x.shape[0] * channels)), int32(per_thread), int32(mask is not None)))
    return g


def _operands(x, weight):
    dtype = result_type(x.dtype, weight.dtype)
    return contiguous(x, dtype), contiguous(weight, dtype)


def _weight_gradient(x, shape, needed):
    """dW's buffer: the first chunk's GEMM writes it, later ones add (zeros when there is no chunk)."""
    if not needed:
        return None
    return empty(x, shape) if x.shape[0] else get_array_module(x).zeros(shape, x.dtype)


def conv2d_forward(x, weight, bias, stride, padding, out_h, out_w, relu, budget):
    """x (N, C, H, W), weight (C_out, C, kh, kw) -> y (N, C_out, out_h, out_w) = conv + bias,
    then the ReLU when ``relu``: per chunk, im2col, one GEMM, and one pass that moves the
    result into y adding the bias (a whole-image chunk's GEMM writes into y directly)."""
    x, weight = _operands(x, weight)
    n, c, _, _ = x.shape
    c_out, _, kh, kw = weight.shape
    k, length = c * kh * kw, out_h * out_w
    w2 = weight.reshape(c_out, k)
    bias = None if bias is None else contiguous(bias, x.dtype)
    y = empty(x, (n, c_out, out_h, out_w))
    spans = chunks(n * length, max(k, c_out), length, out_w, x.dtype.itemsize, budget)
    cols_scratch, z_scratch = Scratch(x, k, spans), Scratch(x, c_out, spans)
    for first, last in spans:
        image = whole_image(first, last, length)
        if image is not None and pointwise(kh, kw, stride, padding):
            cols = x[image].reshape(c, length)
        else:
            cols = im2col(x, cols_scratch.matrix(last - first), first, kh, kw, stride, padding, out_h, out_w)
        if image is not None:
            out = gemm(w2, cols, y[image].reshape(c_out, length))
            bias_relu(out.reshape(1, c_out, length), bias, relu)
        else:
            columns_to_maps(gemm(w2, cols, z_scratch.matrix(last - first)), y, first, bias, relu)
    return y


def conv2d_backward(gy, x, y, weight, stride, padding, needs, budget):
    """Gradients of conv2d: gy (N, C_out, out_h, out_w) -> (dx, dW, d bias), each None unless
    ``needs`` asks for it. ``y`` is the output of a fused ReLU (its mask), else None.

    Per chunk: dZ (C_out, P), gy in the GEMM layout (through the ReLU's mask); dW += dZ cols^T
    (one GEMM accumulating in place); dcols = W^T dZ (transpose flag) into the columns' buffer,
    then col2im."""
    x, weight = _operands(x, weight)
    n, c, _, _ = x.shape
    c_out, _, kh, kw = weight.shape
    out_h, out_w = gy.shape[2:]
    k, length = c * kh * kw, out_h * out_w
    need_x, need_w, need_b = needs
    w2 = weight.reshape(c_out, k)
    gy = contiguous(gy, x.dtype)
    xp = get_array_module(x)
    gx = empty(x, x.shape) if need_x else None
    gw = _weight_gradient(x, (c_out, k), need_w)
    gb = xp.zeros(c_out, x.dtype) if need_b else None
    spans = chunks(n * length, max(k, c_out), length, out_w, x.dtype.itemsize, budget)
    cols_scratch, gz_scratch = Scratch(x, k, spans), Scratch(x, c_out, spans)
    for number, (first, last) in enumerate(spans):
        image = whole_image(first, last, length)
        own_columns = image is not None and pointwise(kh, kw, stride, padding)
        if image is not None and y is None:
            gz = gy[image].reshape(c_out, length)
        else:
            gz = maps_to_columns(gy, gz_scratch.matrix(last - first), first, y)
        if need_b:
            gb += gz.sum(axis=1)
        if need_w:
            cols = (x[image].reshape(c, length) if own_columns else
                    im2col(x, cols_scratch.matrix(last - first), first, kh, kw, stride, padding, out_h, out_w))
            gemm(gz, cols, gw, transb=True, accumulate=number > 0)
        if need_x:
            if own_columns:
                gemm(w2, gz, gx[image].reshape(c, length), transa=True)
            else:
                gcols = gemm(w2, gz, cols_scratch.matrix(last - first), transa=True)
                col2im(gcols, gx, first, kh, kw, stride, padding, out_h, out_w)
    return gx, None if gw is None else gw.reshape(weight.shape), gb


def conv_transpose2d_forward(x, weight, bias, stride, padding, out_shape, budget):
    """x (N, C_in, H, W), weight (C_in, C_out, kh, kw) -> y ``out_shape`` (N, C_out, Ho, Wo):
    per chunk of input pixels, cols = W^T x (one GEMM, transpose flag), col2im onto y; then
    the bias in one pass."""
    x, weight = _operands(x, weight)
    n, c_in, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    k, length = c_out * kh * kw, h * w
    w2 = weight.reshape(c_in, k)
    y = empty(x, out_shape)
    spans = chunks(n * length, max(k, c_in), length, w, x.dtype.itemsize, budget)
    x_scratch, cols_scratch = Scratch(x, c_in, spans), Scratch(x, k, spans)
    for first, last in spans:
        image = whole_image(first, last, length)
        xc = (x[image].reshape(c_in, length) if image is not None
              else maps_to_columns(x, x_scratch.matrix(last - first), first))
        cols = gemm(w2, xc, cols_scratch.matrix(last - first), transa=True)
        col2im(cols, y, first, kh, kw, stride, padding, h, w)
    return bias_relu(y, None if bias is None else contiguous(bias, x.dtype))


def conv_transpose2d_backward(gy, x, weight, stride, padding, needs, budget):
    """Gradients of conv_transpose2d: per chunk of input pixels, gcols = im2col(dY); dW += x gcols^T
    (one GEMM accumulating in place), dx = W gcols; d bias = sum of dY."""
    x, weight = _operands(x, weight)
    n, c_in, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    k, length = c_out * kh * kw, h * w
    need_x, need_w, need_b = needs
    w2 = weight.reshape(c_in, k)
    gy = contiguous(gy, x.dtype)
    gx = empty(x, x.shape) if need_x else None
    gw = _weight_gradient(x, (c_in, k), need_w)
    spans = chunks(n * length, max(k, c_in), length, w, x.dtype.itemsize, budget)
    x_scratch, cols_scratch = Scratch(x, c_in, spans), Scratch(x, k, spans)
    for number, (first, last) in enumerate(spans if need_x or need_w else ()):
        image = whole_image(first, last, length)
        gcols = im2col(gy, cols_scratch.matrix(last - first), first, kh, kw, stride, padding, h, w)
        if need_w:
            xc = (x[image].reshape(c_in, length) if image is not None
                  else maps_to_columns(x, x_scratch.matrix(last - first), first))
            gemm(xc, gcols, gw, transb=True, accumulate=number > 0)
        if need_x:
            if image is not None:
                gemm(w2, gcols, gx[image].reshape(c_in, length))
            else:
                columns_to_maps(gemm(w2, gcols, x_scratch.matrix(last - first)), gx, first)
    gb = gy.sum(axis=(0, 2, 3)) if need_b else None
    return gx, None if gw is None else gw.reshape(weight.shape), gb
