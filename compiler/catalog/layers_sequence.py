"""Sequence layers: embedding, rnn, lstm, gru."""

from ..ir import TensorType  # noqa: F401 - for shape functions
from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries
