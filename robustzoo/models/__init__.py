"""Models: CIFAR architectures registered into timm, and `create_model` with normalization inside."""
from . import preact_resnet, resnet_cifar, small_cnn, wide_resnet  # noqa: F401  (registers into timm)
from .autocast import Autocast
from .factory import CIFAR_ARCHS, build_model, create_model, list_models, model_config
from .normalize import Normalize

__all__ = ["Autocast", "CIFAR_ARCHS", "Normalize", "build_model", "create_model", "list_models", "model_config"]
