"""Training: recipe config, AG clips, feature cache, checkpoints, the loop, prediction.

Public API::

    from tr2_core.train import (
        TrainConfig, load_train_config,          # tr2_core/configs/train/*.yaml
        train,                                   # the loop (RunSpec, load_trained: tr2_core.run)
        FeatureCache, ClipSource, ActionGenomeVideos,
        predict, clip_predictions, concat_predictions,
        atomic_torch_save,
    )

Modules: ``loop`` (the loop), ``distributed`` (ranks and collectives), ``validation``
(the validation / test run), ``checkpoint`` (saving, resuming, the stored config),
``source`` (a split -> model input, feature cache). The model itself is built by
:mod:`tr2_core.run`.
"""

from tr2_core.train.checkpoint import atomic_torch_save
from tr2_core.train.dataset import ActionGenomeVideos, VideoClip
from tr2_core.train.feature_cache import FeatureCache
from tr2_core.train.loop import train
from tr2_core.train.predict import clip_predictions, concat_predictions, predict
from tr2_core.train.recipe import TrainConfig, load_train_config
from tr2_core.train.source import ClipSource

__all__ = [
    "ActionGenomeVideos",
    "ClipSource",
    "FeatureCache",
    "TrainConfig",
    "VideoClip",
    "atomic_torch_save",
    "clip_predictions",
    "concat_predictions",
    "load_train_config",
    "predict",
    "train",
]
