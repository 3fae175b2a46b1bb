"""trainc: a declarative training language for deep learning, compiled to tinygrad."""

__version__ = "0.1.0"
