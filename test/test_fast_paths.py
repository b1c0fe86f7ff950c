"""The engine's fast paths equal the plain float32 path (CPU; the CUDA-only ones --
TF32, CUDA-graph capture -- are checked by bench/gpu_check.sh on a GPU).

Tolerances: batch-norm folding 1e-5 relative on features; newest-queries-only and
fixed shape buckets 1e-5 absolute on probabilities (float rounding of differently
shaped matrix products)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tr2_core.errors import ConfigError
from tr2_core.models.entities import build_detector, fold_frozen_batchnorm
from tr2_core.models.fusion import TemporalDecoder, make_grouping, sequence_layout
from tr2_core.models.model_config import resolve_config
from tr2_core.run import build_model
from tr2_core.stream.engine import StreamingEngine
from tr2_core.stream.engine_options import EngineOptions

H, W = 96, 128


def _frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for t in range(n):
        images.append(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        boxes.append(np.array([[10 + t, 10, 60 + t, 90], [70 - t, 30, 100 - t, 60],
                               [5, 60 + t, 40, 90], [50, 5, 90, 40 + t]], np.float32))  # fmt: skip
    return images, boxes, np.array([1, 11, 5, 11], np.int64)


def _randomise_norms(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial frozen statistics (a fresh FrozenBatchNorm2d is the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if type(m).__name__ == "FrozenBatchNorm2d":
            c = m.weight.shape[0]
            m.weight.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))


@torch.no_grad()
def test_batchnorm_folding_equals_unfolded_detector():
    cfg = resolve_config("tr2-small").detector
    torch.manual_seed(0)
    det = build_detector(cfg)
    _randomise_norms(det, 1)
    x = torch.rand(1, 3, 64, 96)
    body_ref = det.backbone(x)
    head_ref = det.roi_heads.box_head(body_ref[:, :, :4, :4])
    norms = sum(type(m).__name__ == "FrozenBatchNorm2d" for m in det.modules())
    assert fold_frozen_batchnorm(det) == norms == 20  # stem, 8 blocks x 2, 3 downsamples
    assert fold_frozen_batchnorm(det) == 0  # idempotent
    body = det.backbone(x)
    torch.testing.assert_close(body, body_ref, rtol=1e-5, atol=1e-5 * body_ref.abs().max())
    head = det.roi_heads.box_head(body[:, :, :4, :4])
    torch.testing.assert_close(head, head_ref, rtol=1e-5, atol=1e-5 * head_ref.abs().max())


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("tr2-small", random_init=True)
    _randomise_norms(m.extractor.detector, 2)
    return m


def _run(model, options: EngineOptions, window: int = 3, frames: int = 5):
    engine = StreamingEngine(model.extractor, model.relation, options, window=window,
                             mode="predcls")  # fmt: skip
    images, boxes, labels = _frames(frames)
    return [engine.process(images[t], t * 10**8, boxes[t], labels) for t in range(frames)]


def _assert_same(a, b, atol: float) -> None:
    for ra, rb in zip(a, b, strict=True):
        assert np.array_equal(ra.pair_subject, rb.pair_subject)
        for family in ("attention", "spatial", "contacting"):
            np.testing.assert_allclose(getattr(ra, family), getattr(rb, family), atol=atol)
        np.testing.assert_allclose(ra.entity_scores, rb.entity_scores, atol=atol)


PLAIN = EngineOptions(fold_batchnorm=False, newest_queries_only=False, device="cpu")


@pytest.mark.parametrize(
    "change",
    [{"newest_queries_only": True}, {"fixed_shapes": True, "shape_bucket": 8},
     {"fixed_shapes": True, "shape_bucket": 1, "newest_queries_only": True}],
    ids=["newest-only", "bucket-8", "bucket-1+newest"],
)  # fmt: skip
def test_engine_fast_paths_equal_plain_path(model, change):
    plain = _run(model, PLAIN)
    fast = _run(model, PLAIN.replace(**change))
    _assert_same(plain, fast, atol=1e-5)


def test_engine_with_folded_detector_equals_plain_path():
    torch.manual_seed(0)
    a = build_model("tr2-small", random_init=True)
    torch.manual_seed(0)
    b = build_model("tr2-small", random_init=True)
    _randomise_norms(a.extractor.detector, 2)
    _randomise_norms(b.extractor.detector, 2)
    plain = _run(a, PLAIN)
    folded = _run(b, PLAIN.replace(fold_batchnorm=True, newest_queries_only=True))
    assert not any(type(m).__name__ == "FrozenBatchNorm2d" for m in b.extractor.modules())
    _assert_same(plain, folded, atol=1e-5)


def test_newest_only_changes_only_unread_rows():
    """The last layer computed for some rows only: those rows equal the full decode,
    the others differ (so the test can see a path that silently computed everything)."""
    cfg = resolve_config("tr2-small").fusion
    torch.manual_seed(0)
    decoder = TemporalDecoder(32, cfg).eval()
    frame = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    subject = torch.zeros(7, dtype=torch.long)
    obj = torch.tensor([1, 2, 1, 2, 1, 2, 3])
    layout = sequence_layout(frame, subject, obj, torch.arange(4), torch.arange(4))
    x = torch.randn(7, 32)
    with torch.no_grad():
        full = decoder(x, layout)
        rows = torch.tensor([4, 5, 6, 2, 3])
        part = decoder(x, layout, query_rows=rows)
        bucketed = decoder(x, layout, bucket=(8, 5))
    torch.testing.assert_close(part[rows], full[rows], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(part[:2], full[:2], atol=1e-3)
    torch.testing.assert_close(bucketed, full, atol=1e-5, rtol=1e-5)


def test_box_head_roi_bucket_padding_is_exact(model):
    extractor = model.extractor
    images, boxes, labels = _frames(2)
    tensors = [torch.from_numpy(im).permute(2, 0, 1) for im in images]
    args = ([torch.from_numpy(b) for b in boxes], [torch.from_numpy(labels)] * 2)
    plain = extractor.extract(tensors, *args)
    try:
        extractor.use_fixed_shapes(16)
        padded = extractor.extract(tensors, *args)
    finally:
        extractor.use_fixed_shapes(0)
    torch.testing.assert_close(padded.entity_features, plain.entity_features,
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    assert make_grouping(torch.tensor([3, 3, 1])).padded_to(4, 6).num_groups == 4


def test_cuda_only_paths_are_refused_or_inert_on_cpu(model):
    with pytest.raises(ConfigError, match="cuda-graphs needs a CUDA device"):
        StreamingEngine(model.extractor, model.relation, PLAIN.replace(compile="cuda-graphs"))
    before = torch.backends.cuda.matmul.allow_tf32
    StreamingEngine(model.extractor, model.relation, PLAIN.replace(tf32=True))
    assert torch.backends.cuda.matmul.allow_tf32 == before  # no effect without CUDA


def test_gpu_check_script_parses_and_table_reports_missing_steps(tmp_path):
    """bench/gpu_check.sh is bash-valid and its table names failed steps (the full
    --cpu-smoke run takes minutes on 2 cores: run by hand, see docs/gpu.md)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    subprocess.run(["bash", "-n", str(repo / "bench/gpu_check.sh")], check=True)
    (tmp_path / "steps.txt").write_text("stream 1 12000\n")
    out = subprocess.run(
        [sys.executable, str(repo / "bench/gpu_check_table.py"), str(tmp_path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "| stream | 1 | 12 |" in out
    assert "| paper recipe, 2 epochs, plain | failed (no metrics) |" in out
