"""Runtime: data loading and training on tinygrad."""
