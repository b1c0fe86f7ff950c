"""TR² model: frozen feature extractor (Faster R-CNN + CLIP image tower) and the
trainable relation model (representation, fusion, heads, guidance projections).

One module a stage, in the order data flows through them::

    entities.py          image -> entities: the detector (torchvision's, or the authors'
      release_detector.py   network), its weights, one person per frame, SGDet relabelling
    entity_classifier.py entities -> labels (SGCls / SGDet): the object classifier
    pairs.py             entities -> pairs: the person x every other entity
    pair_features.py     pairs -> pair features: CLIP union crops, relation representation
    extractor.py         the frozen stages above composed: frames -> VideoFeatures
    fusion.py            pair features -> fused relation features (spatial, temporal)
      online.py             the online protocol's windows
    predicate_heads.py   fused features -> predicate scores per family
    relation_outputs.py  what the relation model hands on (PairEncoding, RelationOutput)
    relation_model.py    the trainable stages above composed: RelationModel
    guidance.py, losses.py, glove.py   training: prompts and text table, losses, GloVe
    model_config.py      the configuration of all of it (configs as data)

Public API::

    from tr2_core.models import (
        ModelConfig, load_model_config, resolve_config,     # tr2_core/configs/models/*.yaml
        create_extractor, create_relation_model, load_relation_weights,
        FeatureExtractor, RelationModel, RelationOutput, PairEncoding, concat_encodings,
        compute_losses, alpha_from_counts,
        TextTable, build_text_table, save_text_table, load_text_table, create_clip,
    )

The whole model of a run (extractor + relation model + text table, weights or a
checkpoint) is assembled by :mod:`tr2_core.run`, not here.

Data flow: ``extractor.extract(images, boxes, labels) -> VideoFeatures``;
``relation(features, mode=...) -> RelationOutput`` (= ``relation.decode(relation.encode(
features, mode))``: per-frame half, then the temporal half over a window);
``compute_losses(output, features, targets, text_table, config) -> dict``.
"""

from tr2_core.models.extractor import FeatureExtractor, create_extractor
from tr2_core.models.guidance import (
    TextTable,
    build_text_table,
    load_text_table,
    prompt,
    save_text_table,
)
from tr2_core.models.losses import alpha_from_counts, compute_losses
from tr2_core.models.model_config import (
    ClipConfig,
    DetectorConfig,
    FusionConfig,
    GuidanceConfig,
    HeadConfig,
    LossConfig,
    ModelConfig,
    ObjectClassifierConfig,
    RepresentationConfig,
    load_model_config,
    resolve_config,
)
from tr2_core.models.pair_features import create_clip
from tr2_core.models.relation_model import (
    TASK_MODES,
    RelationModel,
    create_relation_model,
    load_relation_weights,
)
from tr2_core.models.relation_outputs import PairEncoding, RelationOutput, concat_encodings

__all__ = [
    "TASK_MODES",
    "ClipConfig",
    "DetectorConfig",
    "FeatureExtractor",
    "FusionConfig",
    "GuidanceConfig",
    "HeadConfig",
    "LossConfig",
    "ModelConfig",
    "ObjectClassifierConfig",
    "PairEncoding",
    "RelationModel",
    "RelationOutput",
    "RepresentationConfig",
    "TextTable",
    "alpha_from_counts",
    "build_text_table",
    "compute_losses",
    "concat_encodings",
    "create_clip",
    "create_extractor",
    "create_relation_model",
    "load_model_config",
    "load_relation_weights",
    "load_text_table",
    "prompt",
    "resolve_config",
    "save_text_table",
]
