"""The model zoo (see zoo.py). Importing this package does not import TensorFlow."""
from autoq.models.names import MODEL_NAMES, quant_layer_names
from autoq.models.zoo import MODELS, PUBLISHED_PARAMS, REFERENCE_INPUT, build_model, layer_names, model_stats

__all__ = ["MODEL_NAMES", "MODELS", "PUBLISHED_PARAMS", "REFERENCE_INPUT", "build_model", "layer_names",
           "model_stats", "quant_layer_names"]
