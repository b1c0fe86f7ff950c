"""What a run is built from besides its configs (:class:`RunSpec`), as every checkpoint
records it, and where a checkpoint's weight paths point when they are relative to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tr2_core.errors import WeightsError
from tr2_core.evaluation.predictions import small_box_filter
from tr2_core.models.model_config import TaskMode


@dataclass
class RunSpec:
    """What a run is built from besides the model and training configs; saved (as a plain
    dict, with both configs) in every checkpoint."""

    data: str
    """AG root folder (``annotations/``, ``frames/``)."""
    model: str = "tr2"
    """Model config name or path the run started from (the resolved config is saved)."""
    task: TaskMode = "predcls"
    random_init: bool = False
    clip_weights: str | None = None
    detector_weights: str | None = None
    text_table: str | None = None
    glove: str | None = None
    """GloVe text file (e.g. glove.6B.200d.txt) initialising the class embeddings."""
    filter_small_boxes: bool | None = None
    """Drop objects with a short edge <= 16 px; default: on for SGCls / SGDet, as the
    baselines."""
    cache_dir: str | None = None
    """Feature-cache root; default ``$TR2_CACHE_DIR/features`` or ``~/.cache/tr2/features``."""

    @property
    def small_boxes_filtered(self) -> bool:
        return small_box_filter(self.task, self.filter_small_boxes)


CHECKPOINT_RELATIVE = "checkpoint"
"""Value of a checkpoint's ``paths_relative_to`` key: its run's weight paths
(:data:`RELATIVE_RUN_PATHS`) are file names relative to the checkpoint's own folder
(``tr2 import-release`` writes them so, and the folder may be moved or copied whole)."""

RELATIVE_RUN_PATHS = ("clip_weights", "detector_weights", "text_table")
"""The ``run`` fields a checkpoint with ``paths_relative_to: checkpoint`` names relative
to its own folder."""


def checkpoint_relative_path(value: str, checkpoint: str | Path, field: str) -> Path:
    """``value`` (a run path of a ``paths_relative_to: checkpoint`` checkpoint) resolved
    against the folder of ``checkpoint``. Only plain relative paths inside that folder
    are accepted: an absolute path or a ``..`` part would let a copied checkpoint reach
    files outside the folder it came with.

    Raises:
        WeightsError: an absolute path or one that leaves the folder, naming the field."""
    path = Path(value)
    if path.is_absolute() or path.anchor or ".." in path.parts or not path.parts:
        raise WeightsError(
            f"{checkpoint}: config.run.{field}: {value!r} is not a path inside the "
            "checkpoint's folder; the checkpoint is refused"
        )
    return Path(checkpoint).absolute().parent / path
