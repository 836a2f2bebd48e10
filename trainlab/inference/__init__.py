"""Inference from trained models: one probabilities path (with flip TTA), image, table and ensemble prediction,
and Kaggle submission files."""

from trainlab.inference.outputs import Prediction, average_outputs, model_outputs, predict_images

__all__ = ["Prediction", "average_outputs", "model_outputs", "predict_images"]
