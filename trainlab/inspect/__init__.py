"""Looking inside models: per-layer summaries (shapes, parameters, MACs, receptive fields)."""

from trainlab.inspect.summary import summary

__all__ = ["summary"]
