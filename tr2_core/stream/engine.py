"""The online engine: frames one at a time in, that frame's scene graph out.

Per frame, the work that depends only on that frame (detector or given boxes,
CLIP union crops, then the relation model's per-frame half
:meth:`~tr2_core.models.RelationModel.encode`) is done once and kept in a rolling
window of ``W`` frames. Each new frame then adds only the model's temporal half
(:meth:`~tr2_core.models.RelationModel.decode`) over the window, for its own pairs.
The result for frame ``t`` equals the offline model run on the same ``W`` frames
(tested).

Entities get stable ids from :class:`~tr2_core.stream.tracker.IoUTracker`, and
the temporal decoder groups relations by those ids.

An online model (``fusion.online``, docs/protocols.md) runs here exactly as ``tr2 test``
scored it (tested); a bidirectional (paper) model runs causally over the window, which
it was never trained or tested for: ``engine.protocol`` (also in :class:`EngineStats`)
says which, and the engine logs it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2_core.errors import ConfigError, Tr2Error, describe
from tr2_core.models.model_config import TaskMode
from tr2_core.models.relation_outputs import PairEncoding, concat_encodings
from tr2_core.run import load_trained
from tr2_core.scene_graph import keep_valid
from tr2_core.stream.engine_contract import OFFLINE_RUN_CAUSALLY, ONLINE, EngineStats
from tr2_core.stream.engine_options import EngineOptions
from tr2_core.stream.tracker import IoUTracker
from tr2_core.types import SceneGraphResult, VideoFeatures
from tr2_core.vocab import FAMILIES, NUM_OBJECT_CLASSES

log = logging.getLogger(__name__)


class EngineInputError(Tr2Error, ValueError):
    """A :meth:`StreamingEngine.process` call with arguments the engine cannot take
    (one line naming the argument; a ``ValueError`` too, for callers that catch those)."""


@dataclass
class _WindowFrame:
    """What the window keeps per frame (all on the model's device)."""

    stamp_ns: int
    features: VideoFeatures  # one frame, entity_track filled by the tracker
    encoding: PairEncoding  # the relation model's per-frame half, with the tracks

    @property
    def labels(self) -> torch.Tensor:
        """(N,) labels the relation model uses."""
        return self.encoding.entity_labels

    @property
    def scores(self) -> torch.Tensor:
        """(N,) their confidences."""
        return self.encoding.entity_scores


def engine_protocol(relation: torch.nn.Module, window: int) -> tuple[str, int]:
    """(protocol, window W the engine keeps) for ``relation`` and the requested window.

    An online model (``fusion.online``) with a window of its own is run with that window,
    so that the engine produces what ``tr2 test`` scored; with ``temporal_window`` 0 (a
    frame's whole past) the engine keeps the requested ``window`` frames.
    """
    fusion = relation.config.fusion
    if not fusion.online:
        return OFFLINE_RUN_CAUSALLY, window
    return ONLINE, fusion.temporal_window or window


def _to_host(parts: list[torch.Tensor], dtype: torch.dtype) -> list[np.ndarray]:
    """2-D tensors (rows_i, cols_i) -> numpy arrays of ``dtype``, with one copy: rows are
    flattened into one buffer, copied, and split again."""
    flat = torch.cat([p.to(dtype).reshape(-1) for p in parts]).cpu().numpy()
    out, start = [], 0
    for p in parts:
        size = p.shape[0] * p.shape[1]
        out.append(flat[start : start + size].reshape(p.shape[0], p.shape[1]))
        start += size
    return out


INT64_RANGE = (-(2**63), 2**63 - 1)


def checked_stamp(stamp_ns: Any) -> int:
    """``stamp_ns`` as a Python int in int64's range.

    Raises:
        EngineInputError: not an integer (a bool, float or string is not), or beyond
            int64 (the true value is named, never a wrapped one).
    """
    if isinstance(stamp_ns, (bool, np.bool_)) or not isinstance(stamp_ns, (int, np.integer)):
        raise EngineInputError(
            f"stamp_ns must be an integer number of nanoseconds; got {describe(stamp_ns)} "
            f"({type(stamp_ns).__name__})"
        )
    value = int(stamp_ns)
    if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        raise EngineInputError(f"stamp_ns {value} is beyond int64 (at most {INT64_RANGE[1]})")
    return value


class StreamingEngine:
    """Streaming TR²; implements :class:`~tr2_core.stream.engine_contract.SceneGraphEngine`.

    Args:
        extractor: the frozen :class:`~tr2_core.models.FeatureExtractor`.
        relation: the trained :class:`~tr2_core.models.RelationModel`.
        options: :class:`~tr2_core.stream.engine_options.EngineOptions`; the engine uses
            ``window`` (frames ``W`` the temporal decoder sees, the newest
            included), ``mode`` (``"sgdet"`` detects entities; ``"predcls"`` /
            ``"sgcls"`` take the boxes, and labels for predcls, passed to
            :meth:`process`), ``max_gap_s`` (a longer gap between received frames
            resets the window and tracker), ``score_threshold`` (entities below it are left
            out) and ``threads`` (torch CPU threads, when > 0).
        tracker: entity tracker (default :class:`IoUTracker`).
        **changes: :class:`EngineOptions` fields overriding ``options``
            (``window=4, mode="predcls"``).

    Raises:
        ConfigError: an unknown or invalid option.
    """

    def __init__(
        self,
        extractor: Any,
        relation: torch.nn.Module,
        options: EngineOptions | None = None,
        *,
        tracker: IoUTracker | None = None,
        **changes: Any,
    ) -> None:
        if options is not None and not isinstance(options, EngineOptions):
            raise ConfigError(f"options must be EngineOptions, got {type(options).__name__}")
        if not isinstance(relation, torch.nn.Module) or not hasattr(relation, "config"):
            raise EngineInputError(
                f"relation must be a tr2 RelationModel, got {type(relation).__name__}"
            )
        self.options = (options or EngineOptions()).replace(**changes)
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.extractor = extractor
        self.relation = relation.eval()
        self.protocol, self.window = engine_protocol(relation, self.options.window)
        self.model_name: str = relation.config.name
        self._announce_protocol()
        self.mode: TaskMode = self.options.mode  # type: ignore[assignment]
        self.max_gap_ns = int(self.options.max_gap_s * 1e9)
        self.score_threshold = self.options.score_threshold
        self.tracker = tracker or IoUTracker()
        self.frames: deque[_WindowFrame] = deque(maxlen=self.window)
        self.stats = EngineStats(protocol=self.protocol)
        self._temporal_bucket: tuple[int, int] | None = None
        self._apply_fast_paths()

    def _apply_fast_paths(self) -> None:
        """Switch on the fast paths the options ask for (docs/gpu.md): batch-norm folding
        (in place on the given extractor's detector; same outputs to 1e-5), TF32 on
        CUDA, fixed shape buckets and ``torch.compile`` / CUDA graphs."""
        o = self.options
        if o.fold_batchnorm and hasattr(self.extractor, "fold_batchnorm"):
            self.extractor.fold_batchnorm()
        if o.tf32 and self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # process-wide, as torch has it
            torch.backends.cudnn.allow_tf32 = True
        compile_mode = {"off": None, "default": "default", "cuda-graphs": "reduce-overhead"}[
            o.compile
        ]
        if o.compile == "cuda-graphs" and self.device.type != "cuda":
            raise ConfigError("engine option 'compile': cuda-graphs needs a CUDA device")
        if o.fixed_shapes or compile_mode:
            # the window's length is at most W frames; sequences padded to the bucket
            self._temporal_bucket = (o.shape_bucket, self.window)
            if hasattr(self.extractor, "use_fixed_shapes"):
                self.extractor.use_fixed_shapes(o.shape_bucket, compile_mode)
        temporal = getattr(getattr(self.relation, "fusion", None), "temporal", None)
        if compile_mode and temporal is not None:
            # the fixed-shape tensor part only: the regrouping before it is index
            # arithmetic with data-dependent sizes that would break the graph
            temporal.forward_padded = torch.compile(
                temporal.forward_padded, mode=compile_mode, dynamic=False
            )

    def _announce_protocol(self) -> None:
        """One log line saying which protocol the engine's output follows."""
        if self.protocol == OFFLINE_RUN_CAUSALLY:
            log.warning(
                "offline model run causally: expect lower quality than its test figures "
                "(it was trained and tested bidirectionally over whole videos; this engine "
                "sees the last %d frames; see docs/protocols.md)",
                self.window,
            )
        elif self.window != self.options.window:
            log.info(
                "online model trained and tested with W=%d frames: the engine keeps %d "
                "(not the requested %d)",
                self.window, self.window, self.options.window,
            )  # fmt: skip
        else:
            log.info("online model: window W=%d, as in its test figures", self.window)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path | None = None,
        *,
        options: EngineOptions | None = None,
        tracker: IoUTracker | None = None,
        **changes: Any,
    ) -> StreamingEngine:
        """Rebuild extractor and relation model from a ``tr2 train`` checkpoint.

        Args:
            checkpoint: overrides ``options.checkpoint``.
            options: engine options; ``device`` (``auto`` resolved here),
                ``clip_weights`` / ``detector_weights`` (empty: the paths saved in
                the checkpoint; weights usually live elsewhere on a robot than on
                the training machine) are used for loading.
            **changes: :class:`EngineOptions` fields overriding ``options``.

        Raises:
            WeightsError: the checkpoint is missing or refused
                (:func:`tr2_core.run.load_checkpoint`: one line naming the field).
            ConfigError: an unknown or invalid option.
        """
        if options is not None and not isinstance(options, EngineOptions):
            raise ConfigError(f"options must be EngineOptions, got {type(options).__name__}")
        if checkpoint is not None:
            if not isinstance(checkpoint, (str, Path)):
                raise ConfigError(f"checkpoint must be a path, got {type(checkpoint).__name__}")
            changes["checkpoint"] = str(checkpoint)
        options = (options or EngineOptions()).replace(**changes)
        trained = load_trained(
            options.checkpoint,
            options.device,
            clip_weights=options.clip_weights or None,
            detector_weights=options.detector_weights or None,
        )
        model = trained.model
        return cls(model.extractor, model.relation, options, tracker=tracker)

    LIVE_OPTIONS: tuple[str, ...] = ("score_threshold", "max_gap_s")
    """Options :meth:`tune` changes between frames (the others need a new engine)."""

    def tune(self, **changes: Any) -> None:
        """Change :data:`LIVE_OPTIONS` between two frames (a node's live parameters).

        Raises:
            ConfigError: another option, or an invalid value.
        """
        other = sorted(set(changes) - set(self.LIVE_OPTIONS))
        if other:
            raise ConfigError(f"engine options {other} cannot change while running")
        self.options = self.options.replace(**changes)
        self.max_gap_ns = int(self.options.max_gap_s * 1e9)
        self.score_threshold = self.options.score_threshold

    def close(self) -> None:
        """Drop the frames of the window (a node releases the engine next)."""
        self.frames.clear()

    @property
    def device(self) -> torch.device:
        return next(self.relation.parameters()).device

    def reset(self, reason: str) -> None:
        """Empty the window and forget tracks (logged)."""
        if self.frames:
            log.warning("stream reset: %s", reason)
            self.stats.resets += 1
            self.stats.reset_reasons.append(reason)
        self.frames.clear()
        self.tracker.reset()

    # ------------------------------------------------------------------ per frame
    def _check_stamp(self, stamp_ns: int, gap_ns: int | None) -> None:
        if not self.frames:
            return
        last = self.frames[-1].stamp_ns
        gap = stamp_ns - last if gap_ns is None else int(gap_ns)
        if stamp_ns < last:
            self.reset(f"timestamp went backwards ({last} -> {stamp_ns} ns)")
        elif gap > self.max_gap_ns:
            self.reset(f"gap of {gap / 1e9:.3f} s > {self.max_gap_ns / 1e9} s")

    @torch.no_grad()
    def _encode_frame(
        self,
        image: torch.Tensor,
        stamp_ns: int,
        boxes: np.ndarray | None,
        labels: np.ndarray | None,
        scores: np.ndarray | None = None,
    ) -> _WindowFrame:
        dev = self.device
        if self.mode == "sgdet":
            feats = self.extractor.extract([image], frame_keys=[str(stamp_ns)])
        else:
            b_np, lab_np = self._given_entities(boxes, labels)
            sc_np = np.ones(len(b_np), np.float32) if scores is None else np.asarray(scores)
            if sc_np.shape != (len(b_np),):
                raise EngineInputError(f"{len(b_np)} boxes but scores of shape {sc_np.shape}")
            # Non-finite boxes would poison RoIAlign and the crops: leave them out.
            finite = np.isfinite(b_np).all(1)
            if not finite.all():
                self.stats.rejected += int((~finite).sum())
                log.warning("dropped %d entities with non-finite boxes", int((~finite).sum()))
                b_np, lab_np, sc_np = b_np[finite], lab_np[finite], sc_np[finite]
            b = torch.from_numpy(b_np).to(dev)
            lab = torch.from_numpy(lab_np).to(dev)
            sc = torch.from_numpy(sc_np.astype(np.float32)).to(dev)
            repair = self.relation.config.object_classifier.sgcls_pairs == "classifier"
            feats = self.extractor.extract(
                [image],
                [b],
                [lab],
                scores=[sc],
                frame_keys=[str(stamp_ns)],
                with_other_pairs=self.mode == "sgcls" and repair,
            )
            feats = self.relation.inference_pairs(feats, self.mode)
        encoding = self.relation.encode(feats, self.mode)
        tracks = self.tracker.update(
            feats.entity_boxes.cpu().numpy(), encoding.entity_labels.cpu().numpy()
        )
        feats.entity_track = encoding.entity_track = torch.as_tensor(tracks, device=dev)
        return _WindowFrame(stamp_ns, feats, encoding)

    def _given_entities(
        self, boxes: np.ndarray | None, labels: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) float32 boxes and (N,) int64 labels of a predcls / sgcls call, checked.

        Raises:
            EngineInputError: one missing, wrong shapes, labels out of range.
        """
        for name, value in (("boxes", boxes), ("labels", labels)):
            if value is None:
                raise EngineInputError(
                    f"mode {self.mode!r} needs {name}: process(image, stamp_ns, boxes=(N, 4), "
                    "labels=(N,))"
                )
        try:
            b_np = np.asarray(boxes, np.float32)
            lab_raw = np.asarray(labels)
        except (TypeError, ValueError) as e:
            raise EngineInputError(f"boxes / labels are not numeric arrays: {e}") from None
        if b_np.ndim != 2 or b_np.shape[1] != 4:
            raise EngineInputError(f"boxes must be (N, 4) x1 y1 x2 y2; got shape {b_np.shape}")
        if lab_raw.ndim != 1 or lab_raw.dtype.kind not in "iu":
            raise EngineInputError(
                f"labels must be (N,) integers; got shape {lab_raw.shape} {lab_raw.dtype}"
            )
        if len(lab_raw) != len(b_np):
            raise EngineInputError(f"{len(b_np)} boxes but {len(lab_raw)} labels")
        bad = (lab_raw < 0) | (lab_raw >= NUM_OBJECT_CLASSES)
        if bad.any():
            raise EngineInputError(
                f"labels must be Action Genome object indices 0..{NUM_OBJECT_CLASSES - 1}; "
                f"got {describe(lab_raw[bad].tolist())} "
                f"at rows {describe(np.flatnonzero(bad).tolist())}"
            )
        return b_np, lab_raw.astype(np.int64)

    @torch.no_grad()
    def _temporal(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model's temporal half over the window -> newest frame's (attention,
        spatial, contacting) probabilities, each (P_last, family size)."""
        window = concat_encodings([f.encoding for f in self.frames])
        bucket = self._temporal_bucket
        if bucket is not None:  # sequences: next multiple of the bucket, >= 1 bucket
            sequences = -(-max(window.pair_frame.shape[0], 1) // bucket[0]) * bucket[0]
            bucket = (sequences, bucket[1])
        out = self.relation.decode(
            window,
            self.mode,
            only_frame=len(self.frames) - 1,
            newest_only=self.options.newest_queries_only,
            bucket=bucket,
        )
        return out.probabilities()

    def process(
        self,
        image: np.ndarray,
        stamp_ns: int,
        boxes: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        scores: np.ndarray | None = None,
        gap_ns: int | None = None,
    ) -> SceneGraphResult:
        """One frame -> its scene graph.

        Args:
            image: (H, W, 3) uint8 RGB.
            stamp_ns: timestamp in nanoseconds (a jump back or a long gap resets).
            boxes: (N, 4) ``x1 y1 x2 y2`` for predcls / sgcls (ignored in sgdet).
            labels: (N,) AG object indices for predcls / sgcls (person first).
            scores: (N,) confidences of the given boxes (the robot's detector's);
                None: 1.
            gap_ns: the longest gap between consecutive frames the source received
                since the previous processed frame, up to this one. A caller that
                drops stale frames (the ROS node) passes it, so that the window follows
                the camera's spacing, not the inference rate; None: the gap to the
                previous processed frame (every frame processed).

        Raises:
            EngineInputError: an image that is not (H, W, 3) uint8, or so elongated that
                the detector's resize leaves a side of 0 pixels; a stamp that is not an
                integer in int64's range; in predcls / sgcls, boxes or labels missing,
                of the wrong shape, or labels out of range. The engine stays usable.

        Returns:
            :class:`SceneGraphResult`; entities with non-finite boxes or scores and
            pairs that refer to them are left out, never raised.
        """
        image = self._checked_image(image)
        stamp_ns = checked_stamp(stamp_ns)
        if gap_ns is not None:
            gap_ns = checked_stamp(gap_ns)
        self._check_stamp(stamp_ns, gap_ns)
        tensor = torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)
        tensor = tensor.to(self.device)
        frame = self._encode_frame(tensor, stamp_ns, boxes, labels, scores)
        self.frames.append(frame)
        self.stats.frames += 1
        window = np.array([f.stamp_ns for f in self.frames], np.int64)
        f = frame.features
        if f.pair_frame.shape[0] == 0:  # no person-object pair: the entities still count
            attention, spatial, contacting = (torch.zeros((0, family.size)) for family in FAMILIES)
        else:
            attention, spatial, contacting = self._temporal()
        return self._result(frame, attention, spatial, contacting, window)

    def _checked_image(self, image: Any) -> np.ndarray:
        """``image`` as an (H, W, 3) uint8 array the detector can resize.

        Raises:
            EngineInputError: another shape or dtype; a side the resize makes 0 px.
        """
        try:
            image = np.asarray(image)
        except (TypeError, ValueError) as e:
            raise EngineInputError(f"image is not an array: {type(e).__name__}") from None
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise EngineInputError(
                f"image must be (H, W, 3) uint8 RGB with H, W > 0; got {image.shape} {image.dtype}"
            )
        detector = getattr(getattr(self.extractor, "config", None), "detector", None)
        if detector is not None:
            height, width = image.shape[:2]
            # torchvision's GeneralizedRCNNTransform: one scale for both sides
            scale = min(detector.min_size / min(height, width),
                        detector.max_size / max(height, width))  # fmt: skip
            resized = (math.floor(height * scale), math.floor(width * scale))
            if min(resized) < 1:
                raise EngineInputError(
                    f"image of {height}x{width} pixels is too elongated: the detector "
                    f"resizes it to {resized[0]}x{resized[1]} (min_size "
                    f"{detector.min_size}, max_size {detector.max_size}); crop or pad it"
                )
        return image

    def _result(
        self,
        frame: _WindowFrame,
        attention: torch.Tensor,
        spatial: torch.Tensor,
        contacting: torch.Tensor,
        window: np.ndarray,
    ) -> SceneGraphResult:
        """The newest frame's result; invalid rows left out (:func:`keep_valid`)."""
        f = frame.features
        # two device-to-host copies (one per dtype) instead of one per field: each copy
        # from a GPU is a sync
        floats = _to_host(
            [attention, spatial, contacting, frame.scores[:, None], f.entity_boxes],
            torch.float32,
        )
        ints = _to_host(
            [f.entity_track[:, None], frame.labels[:, None], f.pair_subject[:, None],
             f.pair_object[:, None]],
            torch.int64,
        )  # fmt: skip
        att, spa, con, scores, boxes = floats
        track, labels, subject, obj = (a[:, 0] for a in ints)
        result = SceneGraphResult(
            stamp_ns=frame.stamp_ns,
            entity_track=track,
            entity_labels=labels,
            entity_scores=scores[:, 0],
            entity_boxes=boxes,
            pair_subject=subject,
            pair_object=obj,
            attention=att,
            spatial=spa,
            contacting=con,
            window_stamps_ns=window,
        )
        result, rejected = keep_valid(result, self.score_threshold)
        self.stats.rejected += rejected
        return result
