"""Direct 3x3 convolution on the CPU, without a column matrix (``transposed_conv.py`` holds the
transposed convolution's direct kernels).

A convolution with a handful of channels on a full-resolution map does little
arithmetic per value moved, so building its im2col columns (nine times the input,
written to memory and read back) costs more than the products themselves. These
kernels read the input's rows, zero-padded, instead:

    y[n, co, o, q] = bias[co] + sum over (c, i, j) of w[co, c, i, j] * xp[n, c, o + i, q + j]

with xp the input padded by p on every side. For one input channel, the nine taps of
four output channels are one loop body whose index runs along a band of flattened padded
rows (contiguous in a small band of xp and in a scratch band of sums): LLVM vectorises it, keeps the 36
weights in registers and reads each input value once for the four channels.
``fastmath={"contract"}`` lets it fuse the multiply-adds, and the weight gradient's sums
also get ``"reassoc"`` (the order of a sum); no flag that changes NaN or Inf is set. The
zero padding is made inside the kernels, one input channel's band of rows at a time, in a
band that stays in the core's cache (``padded_band``): no padded copy of the whole input
is written to memory and read back. The kernels are compiled once per padding (0, 1 or 2),
which they hold as a constant.

Stride 1, 3x3 kernels (every 3x3 convolution of H-ReNet). The input gradient is then the
same kernel run on dZ, padded by 2 - p, with the weights flipped and transposed:

    dx[n, c, y, x] = sum over (co, i, j) of w[co, c, 2 - i, 2 - j] * dZp[n, co, y + i, x + j],

and the weight gradient is nine dot products per output-gradient row and input channel,
summed over rows: dW[co, c, i, j] = sum over (n, o, q) of dZ[n, co, o, q] * xp[n, c, o + i, q + j].
"""
from __future__ import annotations

import functools

import numba
import numpy as np
from numba import njit, prange

from . import workspace
from .launch import kernel

CONTRACT = {"contract"}
FAST = {"contract", "reassoc"}


def multiply_adds(outputs, c_in):
    """A 3x3 kernel's work in ``launch`` units: 9 * C_in multiply-adds per output value, 16 of
    which take about as long as streaming one element."""
    return outputs * c_in * 9 // 16


@njit(inline="always")
def nine(w):
    """The nine weights of a 3x3 kernel as a tuple, so that they live in registers."""
    return (w[0, 0], w[0, 1], w[0, 2], w[1, 0], w[1, 1], w[1, 2], w[2, 0], w[2, 1], w[2, 2])


@njit(inline="always")
def padded_band(plane, p, first, rows, band):
    """Rows first .. first+rows-1 of ``plane`` (H, W) padded by p zeros on every side, flat
    (row stride Wp = W + 2p), written into ``band`` (at least rows * Wp values) and returned;
    with p = 0, the plane's own rows (no copy, ``band`` unused).

    Only the rows inside the plane are written: ``band`` comes zeroed from ``empty_band`` and is
    reused for every input channel of one band of rows, whose padding rows and columns are the
    same for every channel, so they stay zero. The kernels are compiled once per padding, with p
    a constant: with p a run-time value, the convolution loops that read the band ran 25-45%
    slower."""
    h, w = plane.shape
    if p == 0:
        return plane.reshape(-1)[first * w:]
    wp = w + 2 * p
    for r in range(max(0, p - first), min(rows, h + p - first)):
        source = plane[first + r - p]
        target = band[r * wp + p:]
        for q in range(w):          # an explicit loop: LLVM vectorises it (a slice copy it did not)
            target[q] = source[q]
    return band


@njit(inline="always")
def empty_band(p, rows, wp, dtype):
    """A zeroed band of rows * Wp values for padded_band (none needed when p = 0)."""
    return np.zeros(rows * wp if p > 0 else 0, dtype)


@functools.cache
def conv3x3_kernel(p):
    """The forward kernel for padding p, with p compiled in as a constant (see padded_band)."""

    @kernel(work=lambda x, w, bias, relu, band_rows, y: multiply_adds(y.size, w.shape[1]), fastmath=CONTRACT)
    def conv3x3_padded(x, w, bias, relu, band_rows, y):
        # y (N, C_out, Ho, Wo) = w (C_out, C_in, 3, 3) cross-correlated with the input x
        # (N, C_in, H, W) padded by p (Ho = H + 2p - 2, Wp = Wo + 2 = W + 2p), plus bias
        # (empty: none), then ReLU if asked.
        #
        # Padding: per band and input channel, the rows + 2 padded input rows the band reads
        # are written into a band of (rows + 2) * Wp values (padded_band), which the
        # four-channel passes then read from the core's cache; with p = 0 they are read in
        # place.
        #
        # Flat rows: output (o, q) and its window's top-left input (o, q) share the flat index
        # t = o*Wp + q in the padded plane, so a band of output rows is ONE long loop over t,
        # whose Wp - Wo = 2 positions per row past the row's end are computed and thrown away.
        # The sums go to a scratch band acc (C_out, rows*Wp) that stays in cache, and are
        # copied into y (with the ReLU) at the end. A long loop pays the loop's set-up (weights
        # into registers, alias checks) once per band instead of once per row.
        #
        # Register blocking: four output channels per pass share each input value: per flat
        # position, nine loads of x feed 36 multiply-adds into four accumulator rows (the 36
        # weights stay in registers), instead of nine loads per nine multiply-adds.
        #
        # Threads: prange over the (image, band of band_rows output rows) units; a unit owns its
        # scratch band and its rows of every output plane.
        n, c_in = x.shape[:2]
        c_out, out_h, out_w = y.shape[1:]
        wp = out_w + 2
        bands = (out_h + band_rows - 1) // band_rows
        has_bias = bias.size > 0
        blocked = c_out - c_out % 4
        for unit in prange(n * bands):
            b, o0 = unit // bands, unit % bands * band_rows
            rows = min(band_rows, out_h - o0)
            length = (rows - 1) * wp + out_w        # the last row's thrown-away tail is not computed
            acc = np.empty((c_out, rows * wp), y.dtype)
            for co in range(c_out):
                acc[co] = bias[co] if has_bias else 0
            band = empty_band(p, rows + 2, wp, x.dtype)
            for c in range(c_in):
                # the band's padded input rows, flat, and the same shifted by one and two rows:
                # indexing x1[t] rather than x[t + wp] keeps every index a plain t + 0, 1 or 2,
                # which Numba knows to be non-negative (no wraparound check, so the loop vectorises)
                x0 = padded_band(x[b, c], p, o0, rows + 2, band)
                x1 = x0[wp:]
                x2 = x0[2 * wp:]
                for co in range(0, blocked, 4):
                    k0 = nine(w[co, c])
                    k1 = nine(w[co + 1, c])
                    k2 = nine(w[co + 2, c])
                    k3 = nine(w[co + 3, c])
                    d0 = acc[co]
                    d1 = acc[co + 1]
                    d2 = acc[co + 2]
                    d3 = acc[co + 3]
                    for t in range(length):
                        x00 = x0[t]
                        x01 = x0[t + 1]
                        x02 = x0[t + 2]
                        x10 = x1[t]
                        x11 = x1[t + 1]
                        x12 = x1[t + 2]
                        x20 = x2[t]
                        x21 = x2[t + 1]
                        x22 = x2[t + 2]
                        d0[t] += ((k0[0] * x00 + k0[1] * x01 + k0[2] * x02) + (k0[3] * x10 + k0[4] * x11 + k0[5] * x12)
                                  + (k0[6] * x20 + k0[7] * x21 + k0[8] * x22))
                        d1[t] += ((k1[0] * x00 + k1[1] * x01 + k1[2] * x02) + (k1[3] * x10 + k1[4] * x11 + k1[5] * x12)
                                  + (k1[6] * x20 + k1[7] * x21 + k1[8] * x22))
                        d2[t] += ((k2[0] * x00 + k2[1] * x01 + k2[2] * x02) + (k2[3] * x10 + k2[4] * x11 + k2[5] * x12)
                                  + (k2[6] * x20 + k2[7] * x21 + k2[8] * x22))
                        d3[t] += ((k3[0] * x00 + k3[1] * x01 + k3[2] * x02) + (k3[3] * x10 + k3[4] * x11 + k3[5] * x12)
                                  + (k3[6] * x20 + k3[7] * x21 + k3[8] * x22))
                for co in range(blocked, c_out):       # the last C_out % 4 channels, one at a time
                    k = nine(w[co, c])
                    d = acc[co]
                    for t in range(length):
                        d[t] += ((k[0] * x0[t] + k[1] * x0[t + 1] + k[2] * x0[t + 2])
                                 + (k[3] * x1[t] + k[4] * x1[t + 1] + k[5] * x1[t + 2])
                                 + (k[6] * x2[t] + k[7] * x2[t + 1] + k[8] * x2[t + 2]))
            for co in range(c_out):
                for r in range(rows):
                    src = acc[co, r * wp:r * wp + out_w]
                    dst = y[b, co, o0 + r]
                    for q in range(out_w):
                        v = src[q]
                        dst[q] = 0 if (relu and v <= 0) else v     # NaN passes through, as it must
    return conv3x3_padded


@njit(inline="always")
def add_nine(k, s0, s1, s2, s3, s4, s5, s6, s7, s8):
    """Adds nine sums onto a 3x3 kernel's weights (in float64)."""
    k[0, 0] += s0
    k[0, 1] += s1
    k[0, 2] += s2
    k[1, 0] += s3
    k[1, 1] += s4
    k[1, 2] += s5
    k[2, 0] += s6
    k[2, 1] += s7
    k[2, 2] += s8


@functools.cache
def weight_grad_kernel(p):
    """The weight-gradient kernel for padding p, with p compiled in as a constant (see padded_band)."""

    @kernel(work=lambda x, gz, offset, band_rows, parts: multiply_adds(gz.size, x.shape[1]), fastmath=FAST)
    def weight_grad_padded(x, gz_flat, offset, band_rows, parts):
        # parts (P, C_out, C_in, 3, 3), float64: part u holds dW summed over unit u, a band of
        # band_rows output rows of one image; the caller adds the parts. x (N, C_in, H, W) is the
        # input, padded by p inside the kernel as in conv3x3_kernel (Wp = W + 2p);
        # gz_flat[:, :, offset:] is dZ in the flat rows of the padded input (row stride Wp, zeros
        # in the two positions past each row's end; offset Wp + 1 when gz_flat is dZ padded by
        # one, whose border supplies those zeros), so that a band is one long loop:
        #     dW[co, c, i, j] += sum over t of dZflat[co, t] * xp_flat[c, t + i*Wp + j].
        # Threads: prange over the units, so no two threads write the same partial sum. Per input
        # channel, its band of padded rows is made once (padded_band); then per pair of output
        # channels one pass along the band accumulates the eighteen dot products of the two
        # gradient rows with the nine shifted input rows (each input value is loaded once for
        # both channels; "reassoc" lets LLVM keep vector partial sums).
        n, c_in, h, w = x.shape
        c_out = gz_flat.shape[1]
        wp, out_h = w + 2 * p, h + 2 * p - 2
        bands = (out_h + band_rows - 1) // band_rows
        zero = gz_flat.dtype.type(0)
        zero_row = np.zeros(gz_flat.shape[2], gz_flat.dtype)
        for unit in prange(n * bands):
            part = parts[unit]
            part[:] = 0
            b, o0 = unit // bands, unit % bands * band_rows
            rows = min(band_rows, out_h - o0)
            # the band's flat positions, without the last row's zero tail (the windows of those
            # positions would reach past the end of the padded band)
            start, length = o0 * wp, (rows - 1) * wp + wp - 2
            band = empty_band(p, rows + 2, wp, x.dtype)
            for c in range(c_in):
                x0 = padded_band(x[b, c], p, o0, rows + 2, band)   # shifted rows as slices (see conv3x3_kernel)
                x1 = x0[wp:]
                x2 = x0[2 * wp:]
                for co in range(0, c_out, 2):
                    g = gz_flat[b, co, offset + start:offset + start + length]
                    h1 = gz_flat[b, co + 1, offset + start:offset + start + length] if co + 1 < c_out else zero_row[:length]
                    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = zero
                    u0 = u1 = u2 = u3 = u4 = u5 = u6 = u7 = u8 = zero
                    for t in range(length):
                        v = g[t]
                        e = h1[t]
                        a0 = x0[t]
                        a1 = x0[t + 1]
                        a2 = x0[t + 2]
                        b0 = x1[t]
                        b1 = x1[t + 1]
                        b2 = x1[t + 2]
                        c0 = x2[t]
                        c1 = x2[t + 1]
                        c2 = x2[t + 2]
                        s0 += v * a0
                        s1 += v * a1
                        s2 += v * a2
                        s3 += v * b0
                        s4 += v * b1
                        s5 += v * b2
                        s6 += v * c0
                        s7 += v * c1
                        s8 += v * c2
                        u0 += e * a0
                        u1 += e * a1
                        u2 += e * a2
                        u3 += e * b0
                        u4 += e * b1
                        u5 += e * b2
                        u6 += e * c0
                        u7 += e * c1
                        u8 += e * c2
                    add_nine(part[co, c], s0, s1, s2, s3, s4, s5, s6, s7, s8)
                    if co + 1 < c_out:
                        add_nine(part[co + 1, c], u0, u1, u2, u3, u4, u5, u6, u7, u8)
    return weight_grad_padded


@kernel()
def flat_rows_kernel(gz, wp, out):
    # out (N, C, Ho*Wp): each row of gz (N, C, Ho, Wo) followed by Wp - Wo zeros.
    # Threads: prange over the N*C planes.
    n, c, out_h, out_w = gz.shape
    for r in prange(n * c):
        b, ch = r // c, r % c
        plane = out[b, ch]
        for o in range(out_h):
            plane[o * wp:o * wp + out_w] = gz[b, ch, o]
            plane[o * wp + out_w:(o + 1) * wp] = 0


# Bytes of a band's scratch sums (C_out * rows * Wp values): small enough to stay in a core's
# L2 cache while the band's inputs stream through, large enough for long flat loops.
BAND_BYTES = 256 * 2 ** 10


# The shortest flat loop (output rows x Wp) that a band of the forward kernel should run: with
# more output channels than fit BAND_BYTES at this length, conv3x3 runs the kernel on one group of
# output channels at a time (``channel_group``). 512 channels at 50x62 (Wp 64) fit one row a
# band, and the forward took 93 ms; in groups of 64, with 16-row bands, 58 ms.
MIN_BAND_LENGTH = 1000


def channel_group(c_out, wp, itemsize):
    """Output channels per run of conv3x3_kernel: all of them when bands of MIN_BAND_LENGTH flat
    positions of their scratch sums fit BAND_BYTES, else as many as do (a multiple of four, at
    least four)."""
    rows = -(-MIN_BAND_LENGTH // wp)
    fit = BAND_BYTES // (rows * wp * itemsize)
    return c_out if c_out <= fit else max(4, fit - fit % 4)


def band_rows(c_out, out_h, wp, itemsize, images=1):
    """Output rows per band of conv3x3_kernel: the scratch sums within BAND_BYTES, and at least
    two bands per thread over the ``images`` (so that one image still keeps every thread busy),
    as equal as the rows allow."""
    most = max(1, BAND_BYTES // max(1, c_out * wp * itemsize))
    bands = max(-(-out_h // most), -(-2 * numba.get_num_threads() // max(1, images)))
    return max(1, -(-out_h // bands))


def conv3x3(x, w, bias, padding, relu):
    """Stride-1 3x3 convolution of (N, C_in, H, W) with (C_out, C_in, 3, 3) and zero padding,
    plus bias, then ReLU.

    Many output channels on a small map (512 at 50x62) would leave room in a band's scratch sums
    for one short row, and the flat loops would be short; the kernel then runs once per group of
    output channels (``channel_group``), each run with bands several rows deep. (Groups inside
    the kernel, with the bounds computed per unit, kept LLVM from vectorising the flat loops.)"""
    x = np.ascontiguousarray(x)
    n, _, h, wd = x.shape
    c_out = w.shape[0]
    out_h, out_w = h + 2 * padding - 2, wd + 2 * padding - 2
    y = np.empty((n, c_out, out_h, out_w), dtype=x.dtype)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    bias = np.zeros(0, x.dtype) if bias is None else np.ascontiguousarray(bias, dtype=x.dtype)   # empty: none
    group = channel_group(c_out, out_w + 2, x.itemsize)
    rows = band_rows(group, out_h, out_w + 2, x.itemsize, n)
    run = conv3x3_kernel(padding)
    for g0 in range(0, c_out, group):
        g = slice(g0, min(c_out, g0 + group))
        run(x, w[g], bias[g] if bias.size else bias, relu, rows, y[:, g])
    return y


def flipped(w):
    """The weights of a stride-1 convolution's input gradient: w (C_out, C_in, kh, kw) flipped
    in both spatial axes and transposed to (C_in, C_out, kh, kw)."""
    return w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


def input_grad(gz, w, padding):
    """dx of a stride-1 3x3 convolution: dZ correlated with the flipped, transposed weights."""
    return conv3x3(gz, flipped(w), None, 2 - padding, relu=False)


def weight_grad(x, gz, padding):
    """dW (C_out, C_in, 3, 3) of a stride-1 3x3 convolution, from its input and dZ."""
    n, c_out, out_h, out_w = gz.shape
    wp = x.shape[3] + 2 * padding
    size = n * c_out * out_h * wp
    gz_flat = workspace.get("dz_flat", size * gz.itemsize, gz.dtype)[:size].reshape(n, c_out, out_h * wp)
    flat_rows_kernel(np.ascontiguousarray(gz), wp, gz_flat)
    return weight_grad_flat(x, gz_flat, 0, out_h, padding)


# The most bytes of float64 partial sums of dW that the weight-gradient kernel's units write
# (one C_out x C_in x 3 x 3 part a unit): a unit writes its whole part, so with many channels
# (512 x 512: 19 MB a part) fewer, longer bands are faster; 1 x 512 x 50 x 62 took 46 ms in two
# bands against 71 ms in eight.
PARTS_BUDGET_BYTES = 8 * 2 ** 20


def weight_grad_flat(x, gz_flat, offset, out_h, padding):
    """dW from the input and dZ in flat padded rows (``weight_grad_kernel``)."""
    n, c_out = gz_flat.shape[:2]
    threads = numba.get_num_threads()
    # bands: about four units per thread, for balance, unless their parts would pass the budget;
    # one unit per thread at least
    part_bytes = c_out * x.shape[1] * 9 * 8
    units = max(threads, min(4 * threads, PARTS_BUDGET_BYTES // part_bytes))
    bands_per_image = -(-units // max(1, n))
    rows = max(1, -(-out_h // bands_per_image))
    parts = np.empty((n * -(-out_h // rows), c_out, x.shape[1], 3, 3), dtype=np.float64)
    weight_grad_kernel(padding)(np.ascontiguousarray(x), gz_flat, offset, rows, parts)
    return parts.sum(axis=0).astype(x.dtype)


def backward_padding_one(x, w, gzp, needs_x, needs_w):
    """(dx, dW) of a stride-1 3x3 convolution with padding 1, from dZ padded by one, gzp
    (N, C_out, Ho+2, Wo+2): the input gradient's kernel reads it as its padded input, and its
    flat rows from offset Wp + 1 are the weight gradient's dZ rows with their zero tails, so
    neither pass copies dZ again."""
    gx = gw = None
    n, c_out, hp, wp = gzp.shape
    if needs_w:
        gw = weight_grad_flat(x, gzp.reshape(n, c_out, hp * wp), wp + 1, hp - 2, 1)
    if needs_x:
        gx = conv3x3(gzp, flipped(w), None, 0, relu=False)
    return gx, gw
