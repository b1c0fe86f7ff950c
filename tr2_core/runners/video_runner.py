"""``tr2 video``: scene graphs of every frame of a video file or an image folder.

Input is either a video file (anything FFmpeg reads, through PyAV) or a folder
of images (PNG / JPEG / BMP / WebP / TIFF, in natural order of their names, so
``frames/VIDEO.mp4/000123.png`` of an Action Genome layout works as is). Output
is one JSON line per frame (:mod:`tr2_core.runners.records`) and, optionally, the
annotated frames as a video (``.mp4``, ``.mkv``, ``.mov``, ``.avi``) or as a
folder of PNGs (any other path).

Timestamps: a video frame's presentation time; the ``i``-th image of a folder
is at ``i / fps`` seconds. A frame that cannot be read (unreadable, too large
or undecodable image or packet) or that the engine cannot take
(:func:`tr2_core.stream.frames.run_frame`) gets a JSON line with its ``error``
and is counted; it never stops the run, and Ctrl-C keeps the frames done.
Outputs are written beside their final paths and appear when the run ends
(:func:`tr2_core.outputs.staged_outputs`); what they may replace: :mod:`tr2_core.outputs`.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tr2_core.errors import Tr2Error, clip
from tr2_core.outputs import Output, check_staged_outputs, staged_outputs
from tr2_core.progress import bar_disabled
from tr2_core.runners.records import error_record, graph_record
from tr2_core.scene_graph import decode_scene_graph
from tr2_core.stream.engine_contract import SceneGraphEngine
from tr2_core.stream.frames import FrameFailed, SkipLog, run_frame
from tr2_core.viz.overlay import draw_scene_graph

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm"})
"""Overlay outputs with these suffixes are encoded as video; others are PNG folders."""
DEFAULT_FPS = 30.0
MAX_FRAME_PIXELS = 8192 * 8192
"""Largest frame decoded (64 Mpx: 200 MB as RGB); larger ones are refused unread."""
_NS = 1_000_000_000


class VideoError(Tr2Error):
    """An input that cannot be read at all, or an output that cannot be written."""


@dataclass
class Frame:
    """One input frame.

    Attributes:
        index: position in the input (0-based, counting unreadable frames too).
        stamp_ns: presentation time in nanoseconds.
        image: (H, W, 3) uint8 RGB, or None when the frame could not be read.
        source: file name (image folders) or None.
        error: why the frame could not be read (``image`` is None).
    """

    index: int
    stamp_ns: int
    image: np.ndarray | None
    source: str | None = None
    error: str | None = None


@dataclass
class VideoReport:
    """What :func:`process_video` did.

    Attributes:
        frames: input frames (one JSON line each).
        graphs: frames with a scene graph.
        rejected: frames that could not be read or decoded, or that the engine
            could not take (each gets a JSON line with its ``error``).
        truncated: reading stopped early at an unreadable part of a video file, or
            fewer frames were decoded than the container states (count or duration).
        fps: frame rate used for stamps (folders) / the overlay video.
        skips: skipped frames per reason (``skip_reasons``).
        interrupted: Ctrl-C stopped the run; the outputs hold the frames done.
        outputs: paths written.
        overlay_not_written: the ``--overlay`` video, when no frame could be drawn into
            it (no frame gave a scene graph): it is not written (an existing file at
            that path stays as it was); the JSON lines are.
    """

    frames: int = 0
    graphs: int = 0
    rejected: int = 0
    truncated: str | None = None
    fps: float = DEFAULT_FPS
    skips: SkipLog = field(default_factory=lambda: SkipLog(log))
    interrupted: bool = False
    outputs: list[Path] = field(default_factory=list)
    overlay_not_written: Path | None = None

    @property
    def skip_reasons(self) -> Counter[str]:
        return self.skips.reasons

    def summary(self) -> str:
        lines = [
            f"{self.graphs} scene graphs from {self.frames} frames "
            f"({self.rejected} rejected); wrote {', '.join(str(p) for p in self.outputs)}"
        ]
        lines += [f"  {n} x {reason}" for reason, n in self.skip_reasons.most_common(5)]
        if self.truncated:
            lines.append(f"  WARNING: input truncated: {self.truncated}")
        if self.overlay_not_written is not None:
            lines.append(
                f"  WARNING: no frame could be drawn: --overlay {self.overlay_not_written} "
                "was not written"
            )
        if self.frames and not self.graphs:
            lines.append("  WARNING: no frame gave a scene graph (every line is an error)")
        if self.interrupted:
            lines.append(f"  WARNING: interrupted: only the first {self.frames} frames were done")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Inputs.


def _natural_key(name: str) -> list[Any]:
    """``img2.png`` before ``img10.png``; zero-padded AG names sort as numbers too."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in natural order of their names."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def check_frame_size(width: int, height: int, what: str) -> None:
    """Refuse a frame larger than :data:`MAX_FRAME_PIXELS` before decoding it (a small
    file can claim 10000x10000 pixels: gigabytes once decoded).

    Raises:
        VideoError: naming ``what`` and its size.
    """
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(
            f"{what} is {width}x{height} pixels, more than the {MAX_FRAME_PIXELS:,} "
            "tr2 decodes per frame; downscale it first"
        )


def _to_rgb8(image: Any) -> np.ndarray:
    """A PIL image as (H, W, 3) uint8 RGB; 16-bit (and 32-bit integer) greyscale is
    scaled to 8 bits, not clipped (PIL's ``convert`` makes such images all white)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(image).astype(np.float64)
        grey = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":
        raise VideoError("32-bit float images are not supported (save it as 8 or 16 bit)")
    return np.asarray(image.convert("RGB"))


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (16-bit greyscale scaled to 8 bits).

    Raises:
        VideoError: unreadable, undecodable, empty or too large image (reason in the
            message); the size is checked from the header, before decoding.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            check_frame_size(*image.size, f"image {path.name}")
            rgb = _to_rgb8(image)
    except VideoError as e:
        raise VideoError(f"cannot read image {path.name}: {e}") from None
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError
        raise VideoError(f"cannot read image {path.name}: {type(e).__name__}: {e}") from None
    if rgb.ndim != 3 or 0 in rgb.shape:
        raise VideoError(f"image {path.name} is empty")
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)  # PIL's view is read-only


class FolderSource:
    """The images of a folder as frames ``i / fps`` seconds apart."""

    def __init__(self, folder: Path, fps: float | None = None) -> None:
        self.files = image_files(folder)
        if not self.files:
            raise VideoError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.fps = float(fps or DEFAULT_FPS)
        self.total: int | None = len(self.files)
        self.truncated: str | None = None

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files):
            stamp = round(i * _NS / self.fps)
            try:
                yield Frame(i, stamp, read_image(path), path.name)
            except VideoError as e:
                yield Frame(i, stamp, None, path.name, str(e))


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoError(
            "reading or writing video files needs PyAV (pip install av); "
            "a folder of images as IN and a folder as --overlay work without it"
        ) from None
    return av


class VideoSource:
    """The frames of a video file (PyAV), stamped with their presentation time."""

    def __init__(self, path: Path, fps: float | None = None) -> None:
        av = self.av = _import_av()
        try:
            self.container = av.open(str(path))
        except Exception as e:  # av.error.FFmpegError subclasses, OSError
            raise VideoError(f"cannot open video {path}: {type(e).__name__}: {e}") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{path} has no video stream")
        self.path = path
        try:
            self._probe(path, fps)
        except VideoError:
            self.container.close()
            raise
        except Exception as e:  # PyAV on a damaged header: AttributeError, ValueError ...
            self.container.close()
            raise VideoError(f"cannot read video {path}: {type(e).__name__}: {e}") from None
        self.truncated: str | None = None
        self._last_stamp_ns: int | None = None

    def _probe(self, path: Path, fps: float | None) -> None:
        """Stream, frame size, rate, and what the container states: frame count
        (``total``) and duration in seconds (``stated_s``), either may be unknown."""
        self.stream = self.container.streams.video[0]
        check_frame_size(self.stream.width, self.stream.height, f"video {path}")
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(fps or (rate if rate else DEFAULT_FPS))
        self.total = int(self.stream.frames or 0) or None
        stated = None
        if self.stream.duration and self.stream.time_base:
            stated = float(self.stream.duration * self.stream.time_base)
        elif self.container.duration:  # in AV_TIME_BASE units (microseconds)
            stated = self.container.duration / 1_000_000
        self.stated_s: float | None = stated if stated and stated > 0 else None
        self.start_s = 0.0
        if self.stream.start_time is not None and self.stream.time_base:
            self.start_s = float(self.stream.start_time * self.stream.time_base)

    def close(self) -> None:
        self.container.close()

    def _stamp(self, frame: Any, index: int) -> int:
        """Presentation time of a frame or packet in ns (``index / fps`` without one)."""
        try:
            if frame.pts is not None and frame.time_base is not None:
                return int(Fraction(frame.pts) * Fraction(frame.time_base) * _NS)
        except (AttributeError, TypeError, ValueError, ZeroDivisionError):
            pass  # a damaged packet's fields
        return round(index * _NS / self.fps)

    def _check_count(self, read: int) -> None:
        """A file whose index is intact but whose data stops early demuxes without an
        error: compare with the frame count its container announces, or (a container
        that states no count, e.g. Matroska) with the duration it states."""
        if self.total and read < self.total:
            self.truncated = (
                f"{self.total - read} of the {self.total} frames the container announces "
                f"are missing (read {read})"
            )
        elif not self.total and self.stated_s is not None:
            last = self.start_s if self._last_stamp_ns is None else self._last_stamp_ns / _NS
            covered = last - self.start_s + 1.0 / self.fps  # the last frame lasts 1/fps
            if self.stated_s - covered > 2.0 / self.fps:  # more than two frames short
                self.truncated = (
                    f"the container states {self.stated_s:.2f} s, the {read} frames read "
                    f"cover {covered:.2f} s (about {round((self.stated_s - covered) * self.fps)}"
                    " frames missing)"
                )
        if self.truncated:
            log.warning("%s: %s", self.path, self.truncated)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets, None)
            except Exception as e:  # FFmpegError, or PyAV on a damaged file
                self.truncated = f"stopped after {index} frames: {type(e).__name__}: {e}"
                log.warning("%s: %s", self.path, self.truncated)
                return
            if packet is None:
                self._check_count(index)
                return
            stamp = self._stamp(packet, index)
            try:
                decoded = [(self._stamp(f, index + i), f.to_ndarray(format="rgb24"))
                           for i, f in enumerate(packet.decode())]  # fmt: skip
            except Exception as e:  # FFmpegError, or PyAV on a damaged packet
                # A broken packet: one frame lost (its stamp is the packet's).
                reason = f"cannot decode: {type(e).__name__}: {clip(str(e))}"
                yield Frame(index, stamp, None, None, reason)
                index += 1
                continue
            for stamp_ns, image in decoded:
                self._last_stamp_ns = max(stamp_ns, self._last_stamp_ns or stamp_ns)
                yield Frame(index, stamp_ns, image)
                index += 1


def open_source(path: Path, fps: float | None = None) -> FolderSource | VideoSource:
    """A folder of images or a video file.

    Raises:
        VideoError: missing path, empty folder, unreadable video, PyAV missing.
    """
    if not path.exists():
        raise VideoError(f"input {path} does not exist")
    if fps is not None and fps <= 0:
        raise VideoError(f"--fps must be > 0, got {fps}")
    if path.is_dir():
        return FolderSource(path, fps)
    return VideoSource(path, fps)


# --------------------------------------------------------------------------
# Overlay outputs.


class PngFolderWriter:
    """Annotated frames as ``FRAME.png`` files (index zero-padded to 6 digits)."""

    def __init__(self, folder: Path, fps: float) -> None:
        self.folder = folder
        folder.mkdir()

    def write(self, image: np.ndarray, frame: Frame) -> None:
        from PIL import Image

        Image.fromarray(image).save(self.folder / f"{frame.index:06d}.png", compress_level=1)

    def close(self) -> None:
        pass


class VideoWriter:
    """Annotated frames as an H.264 (or MPEG-4 part 2) video at a constant rate.

    Frames are padded to even sizes (yuv420p) and resized to the first frame's
    size if later ones differ (image folders of mixed sizes).
    """

    def __init__(self, path: Path, fps: float) -> None:
        av = _import_av()
        self.path = path
        try:
            self.container = av.open(str(path), mode="w")
        except Exception as e:
            raise VideoError(f"cannot create video {path}: {type(e).__name__}: {e}") from None
        self.codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.rate = Fraction(fps).limit_denominator(1001)
        self.stream: Any = None
        self.size: tuple[int, int] | None = None
        self.av = av

    def _open_stream(self, height: int, width: int) -> None:
        self.stream = self.container.add_stream(self.codec, rate=self.rate)
        self.stream.height, self.stream.width = height + height % 2, width + width % 2
        self.stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            self.stream.options = {"crf": "20", "preset": "veryfast"}
        self.size = (height, width)

    def write(self, image: np.ndarray, frame: Frame) -> None:
        if self.stream is None:
            self._open_stream(*image.shape[:2])
        assert self.size is not None
        if image.shape[:2] != self.size:
            from PIL import Image

            image = np.asarray(Image.fromarray(image).resize(self.size[::-1]))
        h, w = self.size
        if h % 2 or w % 2:
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        out = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self.stream.encode(out):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            if self.stream is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
        finally:
            self.container.close()


def open_overlay(path: Path, fps: float) -> PngFolderWriter | VideoWriter:
    """A video writer for video suffixes, else a PNG folder writer."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoWriter(path, fps)
    return PngFolderWriter(path, fps)


# --------------------------------------------------------------------------
# The run.


def overlay_output(overlay: Path) -> Output:
    """``--overlay``: a video file for video suffixes, else a PNG folder (replaced only
    when an earlier ``tr2 video`` wrote it)."""
    if overlay.suffix.lower() in VIDEO_SUFFIXES:
        return Output.file(overlay, "--overlay")
    return Output.folder(overlay, "--overlay", "tr2-video-overlay-png")


def video_outputs(jsonl: Path, overlay: Path | None) -> list[Output]:
    """The outputs of a run (``--jsonl`` first)."""
    return [Output.file(jsonl, "--jsonl")] + ([overlay_output(overlay)] if overlay else [])


def check_paths(
    src: Path, jsonl: Path, overlay: Path | None = None, *, overwrite: bool = False
) -> None:
    """Cheap checks before any work (the CLI runs them before building the model).

    Raises:
        VideoError: missing input, the same path given twice.
        OutputExistsError: an output exists and ``overwrite`` is off.
        OutputPathError: an output is, holds or lies in IN; an unrelated folder.
    """
    if not src.exists():
        raise VideoError(f"input {src} does not exist")
    outs = [jsonl] + ([overlay] if overlay is not None else [])
    resolved = [p.resolve() for p in outs]
    if len(set(resolved)) != len(resolved) or src.resolve() in resolved:
        raise VideoError("IN, --jsonl and --overlay must be different paths")
    check_staged_outputs(video_outputs(jsonl, overlay), inputs=[src], overwrite=overwrite)


def process_video(
    src: str | Path,
    engine: SceneGraphEngine,
    jsonl: str | Path,
    *,
    overlay: str | Path | None = None,
    fps: float | None = None,
    relation_threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> VideoReport:
    """Scene graphs of every frame of ``src`` as JSON lines (and an annotated video).

    Args:
        src: video file or folder of images.
        engine: a fresh streaming engine (``process(image, stamp_ns)``).
        jsonl: output file, one line per input frame.
        overlay: annotated output: a video (``.mp4`` ...) or a folder of PNGs.
        fps: frame rate of a folder's images (default 30) / override of a video's rate
            for the overlay video (stamps of video files always come from the file).
        relation_threshold: spatial/contacting predicates hold from this score.
        overwrite: replace existing outputs (once the run is complete).
        progress: show a progress bar.

    Raises:
        VideoError: unreadable input, output not writable. No output is left behind.
    """
    src, jsonl = Path(src), Path(jsonl)
    overlay = Path(overlay) if overlay is not None else None
    check_paths(src, jsonl, overlay, overwrite=overwrite)
    source = open_source(src, fps)
    report = VideoReport(fps=source.fps)
    finals = video_outputs(jsonl, overlay)
    try:
        _run(source, engine, finals, [src], report, relation_threshold, overwrite, progress)
    finally:
        source.close()
    report.outputs = [out.path for out in finals if out.path != report.overlay_not_written]
    return report


def _run(
    source: FolderSource | VideoSource,
    engine: SceneGraphEngine,
    finals: list[Output],
    inputs: list[Path],
    report: VideoReport,
    relation_threshold: float,
    overwrite: bool,
    progress: bool,
) -> None:
    from tqdm import tqdm

    overlay = finals[1] if len(finals) > 1 else None
    optional = [overlay] if overlay is not None else []
    with staged_outputs(finals, inputs=inputs, overwrite=overwrite, optional=optional) as staged:
        writer = open_overlay(staged[1], source.fps) if overlay is not None else None
        try:
            with (
                staged[0].open("w", encoding="utf-8") as lines,
                tqdm(
                    total=source.total,
                    unit="frame",
                    desc="tr2 video",
                    disable=bar_disabled(progress),
                ) as bar,
            ):
                frames = iter(source)
                while True:
                    try:  # Ctrl-C keeps the frames done so far (the summary says so)
                        frame = next(frames, None)
                        if frame is None:
                            break
                        report.frames += 1
                        bar.update()
                        record = _frame_record(engine, frame, writer, report, relation_threshold)
                        lines.write(json.dumps(record, allow_nan=False) + "\n")
                    except KeyboardInterrupt:
                        report.interrupted = True
                        break
                    bar.set_postfix(graphs=report.graphs, rejected=report.rejected)
        finally:
            if writer is not None:
                writer.close()
        if isinstance(writer, VideoWriter) and writer.stream is None and overlay is not None:
            staged[1].unlink(missing_ok=True)  # no frame drawn: no video to write
            report.overlay_not_written = overlay.path
        report.truncated = source.truncated


def _frame_record(
    engine: SceneGraphEngine,
    frame: Frame,
    writer: PngFolderWriter | VideoWriter | None,
    report: VideoReport,
    relation_threshold: float,
) -> dict[str, Any]:
    """The JSON record of one frame: its scene graph (drawn to the overlay), or its
    error when it could not be read or the engine could not take it."""
    if frame.image is None:
        return _skip(report, frame, frame.error or "unreadable frame")
    try:
        result = run_frame(engine, frame.image, frame.stamp_ns)
    except FrameFailed as e:
        return _skip(report, frame, str(e))
    graph = decode_scene_graph(result, relation_threshold=relation_threshold)
    height, width = frame.image.shape[:2]
    report.graphs += 1
    if writer is not None:
        writer.write(draw_scene_graph(frame.image, graph), frame)
    return graph_record(graph, frame.index, image_size=(width, height), source=frame.source)


def _skip(report: VideoReport, frame: Frame, reason: str) -> dict[str, Any]:
    report.rejected += 1
    report.skips.skip(str(frame.index), reason)
    return error_record(frame.index, frame.stamp_ns, frame.source, reason)
