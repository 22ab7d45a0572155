"""Training, evaluation and prediction: a plain PyTorch loop driven by a validated YAML config.

=================  ============================================================================
module             what it holds
=================  ============================================================================
``config``         the config schema, its defaults and its checks
``checkpoint``     saving and loading checkpoints, the model a checkpoint holds
``trainer``        the training loop: setup / one epoch / evaluate and checkpoint
``evaluate``       metrics of a checkpoint on a split, with pictures
``predict``        label maps for new images, over many images and processes
``export``         a checkpoint's network as ONNX, with its classes and conventions
=================  ============================================================================
"""

from .checkpoint import load_checkpoint, load_model, model_from_checkpoint, save_checkpoint
from .config import DEFAULTS, ConfigError, load_config, parse_override
from .evaluate import describe, evaluate, run_evaluation
from .export import export_checkpoint
from .predict import Predictor, predict
from .trainer import TrainingError, train

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "Predictor",
    "TrainingError",
    "describe",
    "evaluate",
    "export_checkpoint",
    "load_checkpoint",
    "load_config",
    "load_model",
    "model_from_checkpoint",
    "parse_override",
    "predict",
    "run_evaluation",
    "save_checkpoint",
    "train",
]
