"""Modules: layers with named parameters, state dicts and device moves."""
from . import init
from .layers import (BatchNorm2d, Conv2d, ConvTranspose2d, LSTM, MaxPool2d, ReLU, ReNet,
                     Sequential)
from .module import Module, Parameter

__all__ = ["BatchNorm2d", "Conv2d", "ConvTranspose2d", "LSTM", "MaxPool2d", "Module", "Parameter",
           "ReLU", "ReNet", "Sequential", "init"]
