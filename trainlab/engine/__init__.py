"""The training engine: the loop, its state, checkpoints and callbacks."""
