"""Model architecture configuration (``tr2_core/configs/models/*.yaml``).

Architecture is data: one YAML file per named model maps onto
:class:`ModelConfig`. Weights are separate (paths or tags given on the command
line or in ``detector.weights`` / ``clip.pretrained``). The paper-size model is
``tr2_core/configs/models/tr2.yaml``; the small test/demo model ``tr2-small.yaml`` runs
the same code with smaller widths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tr2_core.config import load_config, to_dict
from tr2_core.errors import ConfigError

BackboneName = Literal["resnet18", "resnet34", "resnet50", "resnet101"]
TaskMode = Literal["predcls", "sgcls", "sgdet"]
GuidanceMode = Literal["none", "full", "bin", "no_tdiff"]
"""``full``: Eq. (2) on temporal differences (TR²); ``no_tdiff``: Eq. (4), v_t onto s_t;
``bin``: TR²ᵇⁱⁿ, binary "did the relations change" on v_t - v_{t-1}; ``none``: TR²⁻."""

LAYER4_CHANNELS: dict[str, int] = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
}
"""Output channels of ResNet ``layer4`` (the box head), i.e. the entity feature width."""


@dataclass
class DetectorConfig:
    """Faster R-CNN with a ResNet C4 body.

    Body = conv1..layer3 (stride 16); box head = layer4 + global average pool,
    so the pooled entity feature is ``LAYER4_CHANNELS[backbone]`` wide (2048 for
    ResNet-101). ``weights`` is a state dict of the whole detector as the chosen
    ``architecture`` names its parameters, loaded strictly.
    """

    architecture: Literal["torchvision", "release"] = "torchvision"
    """``torchvision``: torchvision's Faster R-CNN building blocks (this project's detector).
    ``release``: the authors' Action Genome detector as they run it (caffe-style ResNet,
    BGR pixel means, legacy anchors and +1 box arithmetic, proposal features in SGDet;
    docs/release-detector.md), for the weights of their ``faster_rcnn_ag.pth`` converted
    by :func:`tr2_core.release.detector.read_release_detector`."""
    backbone: BackboneName = "resnet101"
    weights: str | None = None
    num_classes: int = 37
    min_size: int = 600
    max_size: int | None = 1000
    """Cap on the longer side after resizing; ``null`` (``release`` only): no cap, as the
    authors' data loader resizes the shorter side to ``min_size`` whatever the longer."""
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    """Square anchor sizes in input pixels. ``release``: 16 x the legacy generator's
    scales (64, 128, 256, 512 = scales 4, 8, 16, 32 of its 16-px base anchor)."""
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n: int = 6000
    rpn_post_nms_top_n: int = 300
    rpn_nms_thresh: float = 0.7
    roi_output_size: int = 7
    roi_sampling_ratio: int = 2
    score_thresh: float = 0.1
    """SGDet: per-class detection score threshold."""
    nms_thresh: float = 0.4
    """SGDet: per-class NMS IoU."""
    detections_per_image: int | None = 100
    """Most detections kept per image; ``null`` (``release`` only): no cap (authors)."""
    assign_iou: float = 0.5
    """SGDet training: a detection is matched to a GT box at IoU > assign_iou."""
    frames_per_batch: int = 8
    """Frames sent through the detector at once (memory bound)."""
    detection_clip: Literal["every_frame", "first_of_batch"] = "every_frame"
    """``release`` only: which frames' SGDet boxes are clipped to the frame before the
    per-class NMS. ``first_of_batch`` reproduces the authors, whose clipping call covers
    only the first frame of each batch of ``frames_per_batch`` (the others' boxes are
    only clamped at 0, after NMS); ``every_frame`` clips all."""

    @property
    def feature_dim(self) -> int:
        return LAYER4_CHANNELS[self.backbone]


@dataclass
class ClipConfig:
    """Frozen open_clip model: image tower for union crops, text tower for prompts.

    ``overrides`` are passed to ``open_clip.create_model`` as model kwargs (they
    replace the named config's ``embed_dim`` / ``vision_cfg`` / ``text_cfg``):
    the small config uses them for a tiny CLIP with the same code path.
    """

    model_name: str = "ViT-B-32"
    pretrained: str | None = None
    """A local checkpoint file or an open_clip tag (resolved from the local cache)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    crop_mode: Literal["center_square", "stretch", "release"] = "center_square"
    """``center_square`` reproduces CLIP's resize-shorter-side + center-crop of the union box
    (one batched bilinear RoIAlign); ``stretch`` resizes the whole union box to the input
    size; ``release`` crops as the authors' release does, one crop at a time: the 8-bit
    frame cut at the union box truncated to integers (PIL), then CLIP's own preprocessing
    (bicubic resize of the shorter side, centre crop)."""
    precision: Literal["fp32", "fp16"] = "fp32"
    """CLIP's arithmetic. ``fp16`` is OpenAI's (and the release's) mixed precision:
    linear, convolution and attention weights in float16, LayerNorms in float32
    (open_clip's ``precision="fp16"``); ``fp32`` (tr2): float32 throughout."""
    crop_sampling_ratio: int = 2
    """Bilinear samples per output pixel and axis in the batched crop-and-resize (RoIAlign)."""
    crop_batch_size: int = 512
    """Union crops per image-tower forward call."""

    def cache_parts(self) -> dict[str, Any]:
        """This section as the feature and pretraining caches key on it: the plain dict,
        ``precision`` left out at its default so that keys made before it existed stay
        valid."""
        parts = to_dict(self)
        if parts.get("precision") == "fp32":
            del parts["precision"]
        return parts


@dataclass
class RepresentationConfig:
    """Relation representation: union (CLIP) + subject/object visual + class embeddings."""

    entity_dim: int = 2048
    """Width of ``VideoFeatures.entity_features`` (must equal the detector's feature_dim)."""
    union_dim: int = 512
    """Width of ``VideoFeatures.union_features`` = CLIP embed_dim = text-table width."""
    entity_proj_dim: int = 512
    class_embed_dim: int = 200
    geometry: bool = False
    """Optional STTran-style two-channel union-box mask branch (off in the paper's model)."""
    geometry_mask_size: int = 27
    geometry_dim: int = 256

    @property
    def d_model(self) -> int:
        """Width of one relation representation (1936 at paper size)."""
        geo = self.geometry_dim if self.geometry else 0
        return self.union_dim + 2 * self.entity_proj_dim + 2 * self.class_embed_dim + geo


@dataclass
class FusionConfig:
    """Relation feature fusion (paper III-B). A layer count of 0 removes the module."""

    spatial_layers: int = 1
    temporal_layers: int = 3
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    message_token: bool = True
    temporal_window: int = 0
    """0: each element attends to its whole pair sequence; k > 0: only to elements whose
    frame index is in [t - k + 1, t] (STTran-like baseline: 2). With ``online`` it is the
    W of the online protocol (0: a frame's whole past)."""
    online: bool = False
    """Online TR² (docs/protocols.md). ``true``: causal temporal attention (an element
    attends to itself and earlier frames only) and every frame's relations are predicted
    from the encodings of its own last ``temporal_window`` frames alone -- in training,
    validation, ``tr2 test`` and the streaming engine alike, so the test figures are those
    of what a robot gets; at inference pair sequences are keyed by tracker ids (the
    engine's :class:`~tr2_core.stream.tracker.IoUTracker`). ``false`` (paper, authors):
    offline, bidirectional attention over the whole clip."""
    temporal_position: Literal["sequence", "frame"] = "sequence"
    """What the sinusoidal temporal embedding encodes. ``sequence`` (authors): the element's
    position 0..L-1 in its pair sequence; ``frame``: the frame index in the clip (gaps
    where the pair is absent stay visible)."""
    post_ffn_norm: bool = False
    """LayerNorm after the decoder layer's FFN residual. The authors' decoder layer has
    none (only after attention); ``true`` is the standard post-norm layer."""
    decoder_init: Literal["independent", "cloned"] = "independent"
    """How the temporal decoder's layers start. ``independent`` (tr2): each layer its own
    random draw; ``cloned`` (the release's ``_get_clones``): every layer a copy of the
    first. Matters for training only (a trained or converted model loads its weights)."""
    message_first: Literal["zeros", "self"] = "zeros"
    """What g of the message token sees as e_f[t-1] at a sequence's first element: the
    authors feed zeros (the multiplied term still uses the element itself); ``self`` feeds
    the element itself to both."""


@dataclass
class HeadConfig:
    """Per-family predicate classifiers."""

    classifier: Literal["linear", "text"] = "text"
    """Heads of PredCls and SGCls. ``text`` (authors): project e_r to the CLIP width and
    score each predicate by the dot product with the (object class, predicate) text
    embedding (needs the text table); ``linear``: one linear layer per family."""
    sgdet_classifier: Literal["linear", "text"] | None = "linear"
    """Heads of SGDet (authors: ``linear``); ``null``: the same as ``classifier``."""
    normalize_text: bool = False
    """L2-normalise the text embeddings before the dot product. The authors use the raw
    ``encode_text`` output (``false``)."""

    def kind(self, task: str) -> str:
        """The head kind (``linear`` / ``text``) used for ``task``."""
        if task == "sgdet" and self.sgdet_classifier is not None:
            return self.sgdet_classifier
        return self.classifier

    @property
    def uses_text(self) -> bool:
        """Whether any task classifies with the text table."""
        return "text" in (self.classifier, self.sgdet_classifier)


@dataclass
class ObjectClassifierConfig:
    """Object classifier of SGCls / SGDet
    (:class:`~tr2_core.models.entity_classifier.ObjectClassifier`)."""

    hidden_dim: int = 1024
    dropout: float = 0.1
    box_embedding: bool = True
    """Append the authors' box position embedding (BatchNorm over the box centre and
    size, Linear 4 -> 128, ReLU, Dropout) to the visual feature."""
    batch_norm: bool = True
    """BatchNorm1d after the hidden layer (authors); ``false``: ReLU MLP with dropout."""
    class_distribution: bool = False
    """Append the authors' third input: the detector's class distribution over the 36
    objects (softmax of its classification layer on the entity feature, background
    dropped) times a learned (36, class_embed_dim) table (GloVe-initialised in the
    release). The detector's classification layer is held, frozen, in the object
    classifier (``tr2 import-release`` fills it from the detector file). ``false``
    (tr2's default): no third input."""
    person: Literal["classifier", "pair_subject"] = "classifier"
    """Which box is the person at inference. ``classifier`` (authors): per frame the
    entity with the highest person probability; ``pair_subject``: the pairs' subject."""
    dedup: bool = True
    """Authors' duplicate removal: per frame, of the most frequent predicted class only the
    most confident box keeps it; the others take their next best class."""
    sgcls_pairs: Literal["given", "classifier"] = "given"
    """The pairs at SGCls inference. ``given`` (tr2): the given person box x every other
    box, as extracted. ``classifier`` (the release): re-formed around the person the
    classifier chose: per frame that box x every box not labelled person (a duplicate the
    classifier relabelled person drops out), with the union features of the new pairs
    (the extractor then also embeds the other entity pairs; needs ``person:
    classifier``)."""
    sgdet_labels: Literal["detector", "classifier", "release"] = "detector"
    """Labels and scores of the detected boxes at SGDet inference (the object classifier
    is trained in every case). ``detector``: the detector's own, each box the class of its
    per-class NMS. ``classifier``: the object classifier relabels every box with the SGCls
    label decision (``person``, ``dedup``). ``release`` (the authors'): the boxes are
    relabelled from the detector's class distribution over the 36 objects, books, chairs
    and food duplicated under their next class, a second per-class NMS at 0.6, the
    person by probability (:func:`~tr2_core.models.entities.release_sgdet_entities`);
    changes the entity set, so the pairs and union features follow it."""


@dataclass
class GuidanceConfig:
    """Cross-modality feature guidance (paper III-C), training only."""

    mode: GuidanceMode = "full"
    weight: float = 1.0
    change_head: Literal["abs", "linear"] = "abs"
    """TR²ᵇⁱⁿ's change classifier on d = v_t - v_{t-1}. ``abs``: a linear layer on |d|, so
    A->B and B->A get the same logit (change has no direction); ``linear``: a linear layer
    on d (this project's first version: opposite logits for the two directions of one
    change). The authors' release has no TR²ᵇⁱⁿ code."""
    prompt: str = "a photo of a person {predicate} a {object}"
    spatial_prompt: str = "a photo of a {object} {predicate} a person"
    text_rows: Literal["family", "local"] = "family"
    """Which text-table rows Eq. (2)'s text side reads for a GT predicate k of a family.
    ``family`` (tr2): the family's own predicates, row ``family.start + k``; ``local``
    (the release's indexing): row ``k`` of all 26, the family-local label used as an index
    into the whole predicate list (spatial and contacting targets then read other
    predicates' prompts)."""
    difference_bias: bool = False
    """The release projects the difference: ``W (e_t - e_{t-1}) + b``, so the projection's
    bias stays in Eq. (2)'s visual side; tr2 projects each element, and the bias cancels
    in ``v_t - v_{t-1}`` (``false``)."""


@dataclass
class LossConfig:
    object_weight: float = 10.0
    """lambda of Eq. (3) in SGCls (authors: 10)."""
    object_weight_sgdet: float | None = 1.0
    """lambda in SGDet (authors: 1); ``null``: the same as ``object_weight``."""
    focal_gamma: float = 2.0
    focal_form: Literal["pair", "element"] = "pair"
    """Spatial / contacting loss. ``pair`` (authors): BCE summed over the family's classes
    per pair, L, then ``alpha_p * (1 - exp(-L))**gamma * L`` with alpha_p the mean class
    weight over the pair's GT labels; ``element``: focal per (pair, class) element."""
    alpha_index_shift: bool = False
    """Reproduce the authors' off-by-one: they read the weight of GT class k at index k-1
    (class 0 takes the last class's weight). Off by default: a bug, not a design choice."""

    def object_weight_for(self, task: str | None) -> float:
        """lambda for ``task`` (SGDet may differ from SGCls)."""
        if task == "sgdet" and self.object_weight_sgdet is not None:
            return self.object_weight_sgdet
        return self.object_weight


@dataclass
class ModelConfig:
    """The whole TR² model: frozen extractor (detector + CLIP) and relation model."""

    name: str = "tr2"
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    heads: HeadConfig = field(default_factory=HeadConfig)
    object_classifier: ObjectClassifierConfig = field(default_factory=ObjectClassifierConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    @property
    def d_model(self) -> int:
        return self.representation.d_model

    @property
    def relation_dim(self) -> int:
        """Width of e_r: 2 * d_model with the message token, d_model without."""
        return 2 * self.d_model if self.fusion.message_token else self.d_model

    def validate(self) -> None:
        """Cross-field checks; raises :class:`ConfigError` naming the key."""
        rep, fus = self.representation, self.fusion
        if rep.entity_dim != self.detector.feature_dim:
            raise ConfigError(
                f"representation.entity_dim={rep.entity_dim} but detector.backbone="
                f"{self.detector.backbone} gives {self.detector.feature_dim}-d entity features"
            )
        embed = self.clip.overrides.get("embed_dim")
        if embed is not None and embed != rep.union_dim:
            raise ConfigError(
                f"representation.union_dim={rep.union_dim} but clip.overrides.embed_dim={embed}"
            )
        if fus.heads < 1 or self.d_model % fus.heads:
            raise ConfigError(
                f"fusion.heads={fus.heads} must divide the relation width d_model={self.d_model}"
            )
        for key in ("spatial_layers", "temporal_layers", "temporal_window"):
            if getattr(fus, key) < 0:
                raise ConfigError(f"fusion.{key} must be >= 0")
        if not 0.0 <= fus.dropout < 1.0:
            raise ConfigError(f"fusion.dropout={fus.dropout} must be in [0, 1)")
        oc = self.object_classifier
        if oc.sgcls_pairs == "classifier" and oc.person != "classifier":
            raise ConfigError(
                "object_classifier.sgcls_pairs=classifier re-pairs around the classifier's "
                f"person: it needs object_classifier.person=classifier, not {oc.person!r}"
            )
        det = self.detector
        if det.architecture == "torchvision":
            for key in ("max_size", "detections_per_image"):
                if getattr(det, key) is None:
                    raise ConfigError(f"detector.{key}=null needs detector.architecture=release")
        if det.architecture == "release":
            if det.backbone not in ("resnet50", "resnet101"):
                raise ConfigError(
                    f"detector.backbone={det.backbone}: the release architecture is a "
                    "bottleneck ResNet (resnet50 / resnet101)"
                )
            if det.detection_clip not in ("every_frame", "first_of_batch"):
                raise ConfigError(f"detector.detection_clip={det.detection_clip!r}")
            if any(size % 16 for size in det.anchor_sizes):
                raise ConfigError(
                    f"detector.anchor_sizes={list(det.anchor_sizes)}: the release architecture's "
                    "anchors are 16-px base anchors times whole scales (multiples of 16)"
                )
        if self.detector.num_classes != 37:
            raise ConfigError("detector.num_classes must be 37 (AG: background + 36 objects)")
        for key in ("prompt", "spatial_prompt"):
            text = getattr(self.guidance, key)
            if "{predicate}" not in text or "{object}" not in text:
                raise ConfigError(f"guidance.{key} must contain {{predicate}} and {{object}}")


def load_model_config(
    name_or_path: str | Path, overrides: tuple[str, ...] | list[str] = ()
) -> ModelConfig:
    """A named model config (``tr2_core/configs/models/<name>.yaml``) or a YAML path,
    with dotted overrides -> ModelConfig."""
    return load_config(ModelConfig, name_or_path, "models", tuple(overrides))


def resolve_config(config: ModelConfig | str | Path, overrides=()) -> ModelConfig:
    """A ModelConfig as is, or a named / YAML config with dotted overrides."""
    if isinstance(config, ModelConfig):
        if overrides:
            raise ValueError("overrides apply to named configs; edit the ModelConfig instead")
        return config
    return load_model_config(config, tuple(overrides))
