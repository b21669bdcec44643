"""edgekit's model zoo: MobileNet v1/v2, EfficientNet B0-B7 and Lite0-4, classic baselines.

``create_model(name, input_shape=(H, W, C), num_classes=K, **family_params)`` builds a
Keras model from the registry; ``list_models()`` names them; ``count_model(model)`` gives
exact parameters and MACs per layer. This layer imports nothing else of edgekit.
"""

from . import zoo as _zoo  # noqa: F401  (registers the architectures)
from .counting import LayerCount, ModelCount, count_model, layer_macs
from .registry import BuildOptions, ModelSpec, create_model, get_spec, list_models, load_weights

__all__ = ["BuildOptions", "LayerCount", "ModelCount", "ModelSpec", "count_model",
           "create_model", "get_spec", "layer_macs", "list_models", "load_weights"]
