"""Sequence layers: embedding, rnn, lstm, gru. (tinygrad implementations)"""

from typing import Callable

MAKE: dict[str, Callable] = {}  # op -> (layer, input type, rng) -> LayerState with numpy params
LAYER_IMPL: dict[str, Callable] = {}  # op -> (x, state, args, training) -> y
