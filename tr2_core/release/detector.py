"""The authors' detector file (``faster_rcnn_ag.pth``) -> the release detector's weights.

The file is what faster-rcnn.pytorch's ``trainval_net.py`` saves: a dict with ``model``
(the network's ``state_dict()``) beside ``session``, ``epoch``, ``optimizer``,
``pooling_mode`` and ``class_agnostic``. Its ``model`` keys follow that code's module
tree (``RCNN_base`` = conv1, bn1, relu, maxpool, layer1..3 as a Sequential,
``RCNN_top`` = layer4, ``RCNN_rpn.RPN_*``, ``RCNN_cls_score``, ``RCNN_bbox_pred``); each
maps one to one onto :class:`~tr2_core.models.release_detector.ReleaseFasterRCNN`.
Every key is accounted for: none missing, none left over, every shape the network's;
batch norms' ``num_batches_tracked`` (a training counter with no effect at inference,
absent from files saved before PyTorch 0.4.1) is the one kind dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from tr2_core.errors import WeightsError
from tr2_core.models.model_config import DetectorConfig, load_model_config
from tr2_core.models.release_detector import ReleaseFasterRCNN
from tr2_core.torch_files import load_weights_file

RELEASE_DETECTOR_CONFIG = "tr2-release-detector"
"""The named model config whose detector section is the authors' detector."""

# (authors' prefix, tr2 prefix); the first match wins, the rest of the key is kept
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("RCNN_base.0.", "backbone.conv1."),
    ("RCNN_base.1.", "backbone.bn1."),
    ("RCNN_base.4.", "backbone.layer1."),
    ("RCNN_base.5.", "backbone.layer2."),
    ("RCNN_base.6.", "backbone.layer3."),
    ("RCNN_top.0.", "roi_heads.box_head.layer4."),
    ("RCNN_rpn.RPN_Conv.", "rpn.head.conv."),
    ("RCNN_rpn.RPN_cls_score.", "rpn.head.cls_logits."),
    ("RCNN_rpn.RPN_bbox_pred.", "rpn.head.bbox_pred."),
    ("RCNN_cls_score.", "roi_heads.box_predictor.cls_score."),
    ("RCNN_bbox_pred.", "roi_heads.box_predictor.bbox_pred."),
)
_COUNTER = "num_batches_tracked"
_BN_COUNTER = re.compile(r"(^|\.)(bn\d|1|downsample\.1)\.num_batches_tracked$")


def release_detector_config() -> DetectorConfig:
    """The authors' detector configuration (``tr2-release-detector.yaml``)."""
    return load_model_config(RELEASE_DETECTOR_CONFIG).detector


def tr2_key(authors_key: str) -> str | None:
    """The release network's key for an authors' ``model`` key; None when no rule maps it."""
    for theirs, ours in _PREFIXES:
        if authors_key.startswith(theirs):
            return ours + authors_key[len(theirs) :]
    return None


def authors_key(key: str) -> str:
    """The authors' ``model`` key holding the release network's ``key``."""
    for theirs, ours in _PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    raise KeyError(key)


def expected_state(
    cfg: DetectorConfig | None = None,
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Shape and dtype of every state-dict entry of the release network for ``cfg``
    (default: :func:`release_detector_config`), built without allocating weights."""
    cfg = cfg or release_detector_config()
    with torch.device("meta"):
        network = ReleaseFasterRCNN(cfg)
    return {k: (tuple(v.shape), v.dtype) for k, v in network.state_dict().items()}


def is_authors_detector(obj: Any) -> bool:
    """Whether ``obj`` (a loaded file) has the authors' structure: a dict whose ``model``
    is a dict with ``RCNN_base.*`` keys."""
    model = obj.get("model") if isinstance(obj, dict) else None
    return isinstance(model, dict) and any(
        isinstance(k, str) and k.startswith("RCNN_base.") for k in model
    )


def convert_detector(
    obj: Any, source: str, cfg: DetectorConfig | None = None
) -> dict[str, torch.Tensor]:
    """The authors' detector file contents (as ``torch.load`` returns them) -> the state
    dict of :class:`~tr2_core.models.release_detector.ReleaseFasterRCNN` for ``cfg``
    (default: the authors' configuration), float32 tensors.

    Raises:
        WeightsError: one line naming ``source``, the key and what is wrong, when the
            structure is not the authors', or a key is missing, left over, renamed or of
            another shape than the network's; nothing is converted then.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        kind = type(obj).__name__
        keys = sorted(str(k) for k in obj)[:5] if isinstance(obj, dict) else []
        raise WeightsError(
            f"{source}: not the authors' detector file: expected a dict with 'model' "
            f"(faster-rcnn.pytorch's checkpoint), got a {kind}"
            + (f" with keys {keys}" if keys else "")
        )
    if obj.get("pooling_mode", "align") != "align":
        raise WeightsError(
            f"{source}: 'pooling_mode' is {obj['pooling_mode']!r}: the release detector "
            "pools with RoIAlign ('align') only"
        )
    if obj.get("class_agnostic", False):
        raise WeightsError(
            f"{source}: 'class_agnostic' is true: the authors' detector has class-specific "
            "box offsets"
        )
    model = obj["model"]
    if not is_authors_detector(obj):
        raise WeightsError(
            f"{source}: 'model' has no RCNN_base.* key: not faster-rcnn.pytorch's layout"
            + (
                " (already converted? load it with --detector-weights)"
                if "backbone.conv1.weight" in model
                else ""
            )
        )
    expected = expected_state(cfg)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.items():
        where = f"{source}: model[{key!r}]"
        if not isinstance(key, str):
            raise WeightsError(f"{where}: key is not a string")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{where}: not a tensor ({type(value).__name__})")
        if key.endswith(_COUNTER):
            if _BN_COUNTER.search(key) is None or tr2_key(key) is None:
                raise WeightsError(f"{where}: unused key (no batch norm of the network has it)")
            owner = tr2_key(key)[: -len(_COUNTER)] + "running_mean"
            if owner not in expected:
                raise WeightsError(f"{where}: unused key (no batch norm of the network has it)")
            if value.numel() != 1 or value.is_floating_point():
                raise WeightsError(
                    f"{where}: expected an integer counter, got {tuple(value.shape)} {value.dtype}"
                )
            continue  # a training counter: no effect at inference
        ours = tr2_key(key)
        if ours is None or ours not in expected:
            raise WeightsError(f"{where}: unused key (the authors' network has no such parameter)")
        shape, _ = expected[ours]
        if tuple(value.shape) != shape:
            raise WeightsError(
                f"{where}: shape {tuple(value.shape)}, the authors' network has {shape}"
            )
        if not value.is_floating_point():
            raise WeightsError(f"{where}: expected floating-point values, got {value.dtype}")
        out[ours] = value.detach().to(torch.float32)
    missing = [k for k in expected if k not in out]
    if missing:
        names = [authors_key(k) for k in missing]
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        raise WeightsError(f"{source}: model[{names[0]!r}]{more}: missing")
    return out


def read_release_detector(
    path: str | Path, cfg: DetectorConfig | None = None
) -> dict[str, torch.Tensor]:
    """Read the authors' ``faster_rcnn_ag.pth`` (``torch.load(weights_only=True)``: no
    code in the file runs) and convert it (:func:`convert_detector`)."""
    obj = load_weights_file(path, "detector weights")
    return convert_detector(obj, str(path), cfg)
