"""PyTorch-named functional API over tinyseg's ops."""
from .ops.conv import conv2d, conv_transpose2d
from .ops.elementwise import (add, concat, div, exp, log, matmul, mean, mul, neg, pad, pow, relu,
                              reshape, sigmoid, sub, sum, tanh, transpose)
from .ops.loss import cross_entropy
from .ops.lstm import lstm
from .ops.norm import batch_norm
from .ops.pool import max_pool2d
from .ops.renet import renet

__all__ = ["add", "batch_norm", "concat", "conv2d", "conv_transpose2d", "cross_entropy", "div",
           "exp", "log", "lstm", "matmul", "max_pool2d", "mean", "mul", "neg", "pad", "pow",
           "relu", "renet", "reshape", "sigmoid", "sub", "sum", "tanh", "transpose"]
