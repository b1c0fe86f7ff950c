"""Training: recipe config, AG clips, feature cache, checkpoints, the loop, prediction.

Public API::

    from tr2_core.train import (
        TrainConfig, load_train_config,          # config/train/*.yaml
        RunSpec, train, load_trained,            # the loop; rebuild a trained model
        FeatureCache, ClipSource, ActionGenomeVideos,
        predict, clip_predictions, concat_predictions,
        atomic_torch_save, load_checkpoint,
    )
"""

from tr2_core.train.checkpoint import atomic_torch_save, load_checkpoint
from tr2_core.train.config import TrainConfig, load_train_config
from tr2_core.train.dataset import ActionGenomeVideos, VideoClip
from tr2_core.train.feature_cache import FeatureCache
from tr2_core.train.loop import RunSpec, load_trained, train
from tr2_core.train.predict import clip_predictions, concat_predictions, predict
from tr2_core.train.source import ClipSource

__all__ = [
    "ActionGenomeVideos",
    "ClipSource",
    "FeatureCache",
    "RunSpec",
    "TrainConfig",
    "VideoClip",
    "atomic_torch_save",
    "clip_predictions",
    "concat_predictions",
    "load_checkpoint",
    "load_trained",
    "load_train_config",
    "predict",
    "train",
]
