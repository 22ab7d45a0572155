"""Training, evaluation and prediction: a plain PyTorch loop driven by a validated YAML config."""

from .config import DEFAULTS, ConfigError, load_config, parse_override
from .evaluate import evaluate, predict
from .trainer import TrainingError, load_checkpoint, model_from_checkpoint, train

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "TrainingError",
    "evaluate",
    "load_checkpoint",
    "load_config",
    "model_from_checkpoint",
    "parse_override",
    "predict",
    "train",
]
