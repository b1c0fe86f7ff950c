"""The authors' detector: their file converts, and the converted release network computes
what their network computes.

A file of random weights laid out as faster-rcnn.pytorch saves it (full ResNet-101 key
layout and shapes, ``release_detector_fixtures.py``) is converted and run on a small
frame (shorter side 64 px instead of 600, 20 proposals instead of 100: the layer counts
and widths are the real ones). The plain reference below is written from the authors'
description of their network, and reads *their* keys: caffe-style bottlenecks, BGR
pixel means, bilinear resizing at OpenCV's positions, the legacy anchor generator, +1
box arithmetic, RPN scores as a softmax over separate background / foreground channels,
NMS with +1 areas, zero-padded proposals, RoIAlign with an adaptive grid and
aligned=False, layer4 then the spatial mean, class-specific offsets scaled by (0.1, 0.1,
0.2, 0.2), per-class score > 0.1, NMS 0.4, the best person only.

Each conversion step is then undone alone and the outputs must stop matching.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from release_detector_fixtures import (
    authors_checkpoint,
    authors_model_state,
    ref_nms,
    ref_relabel,
    write_authors_detector,
)

from tr2_core.errors import WeightsError
from tr2_core.models import release_detector as rd
from tr2_core.models.entities import build_detector, load_detector_weights
from tr2_core.release.detector import (
    convert_detector,
    read_release_detector,
    release_detector_config,
)
from tr2_core.train.sgdet_assignment import extract_sgdet_training

MEANS_BGR = np.array([102.9801, 115.9465, 122.7717], dtype=np.float32)
MIN_SIZE = 64
POST_NMS = 20
STAGES = (("RCNN_base.4.", 3, 1), ("RCNN_base.5.", 4, 2), ("RCNN_base.6.", 23, 2))


# =========================================================================== reference
def ref_resize(image: np.ndarray, scale: float) -> np.ndarray:
    """cv2.resize(image, None, fx=scale, fy=scale, interpolation=INTER_LINEAR) on a float
    image: the source of output pixel i is (i + 0.5) / scale - 0.5, clamped to the image."""

    def axis(n_out: int, n_in: int):
        src = (np.arange(n_out) + 0.5) / scale - 0.5
        low = np.floor(src).astype(np.int64)
        frac = (src - low).astype(np.float32)
        frac[low < 0] = 0
        low[low < 0] = 0
        at_end = low >= n_in - 1
        frac[at_end] = 0
        low[at_end] = n_in - 1
        return low, np.minimum(low + 1, n_in - 1), frac

    height, width = image.shape[:2]
    out_h, out_w = int(round(height * scale)), int(round(width * scale))
    y0, y1, fy = axis(out_h, height)
    x0, x1, fx = axis(out_w, width)
    rows = image[y0] * (1 - fy)[:, None, None] + image[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def ref_blob(image_rgb: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(3, H, W) RGB in [0, 1] -> (1, 3, H', W') network input, scale; as their data loader
    (RGB -> BGR, minus pixel means, shorter side to MIN_SIZE, no cap)."""
    im = (image_rgb.permute(1, 2, 0).numpy() * 255.0)[:, :, ::-1].astype(np.float32)
    im = im - MEANS_BGR
    scale = MIN_SIZE / min(im.shape[:2])
    im = ref_resize(im, scale)
    return torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float(), scale


def ref_bn(x, sd, p):
    mean, var = sd[p + "running_mean"], sd[p + "running_var"]
    x = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5)
    return x * sd[p + "weight"][None, :, None, None] + sd[p + "bias"][None, :, None, None]


def ref_bottleneck(x, sd, p, stride):
    """Caffe-style bottleneck: the stride on the first 1x1 convolution."""
    out = F.relu(ref_bn(F.conv2d(x, sd[p + "conv1.weight"], stride=stride), sd, p + "bn1."))
    out = F.relu(ref_bn(F.conv2d(out, sd[p + "conv2.weight"], padding=1), sd, p + "bn2."))
    out = ref_bn(F.conv2d(out, sd[p + "conv3.weight"]), sd, p + "bn3.")
    if p + "downsample.0.weight" in sd:
        x = ref_bn(
            F.conv2d(x, sd[p + "downsample.0.weight"], stride=stride), sd, p + "downsample.1."
        )
    return F.relu(out + x)


def ref_base(x, sd):
    x = F.relu(
        ref_bn(F.conv2d(x, sd["RCNN_base.0.weight"], stride=2, padding=3), sd, "RCNN_base.1.")
    )
    x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True)
    for prefix, blocks, stride in STAGES:
        for b in range(blocks):
            x = ref_bottleneck(x, sd, f"{prefix}{b}.", stride if b == 0 else 1)
    return x


def ref_head_to_tail(pooled, sd):
    x = pooled
    for b in range(3):
        x = ref_bottleneck(x, sd, f"RCNN_top.0.{b}.", 2 if b == 0 else 1)
    return x.mean(3).mean(2)


def ref_anchors(scales=(4, 8, 16, 32), ratios=(0.5, 1, 2), base=16) -> np.ndarray:
    """The legacy generator, step by step."""

    def whctrs(a):
        w, h = a[2] - a[0] + 1, a[3] - a[1] + 1
        return w, h, a[0] + 0.5 * (w - 1), a[1] + 0.5 * (h - 1)

    def mk(ws, hs, cx, cy):
        return np.stack(
            [cx - 0.5 * (ws - 1), cy - 0.5 * (hs - 1), cx + 0.5 * (ws - 1), cy + 0.5 * (hs - 1)], 1
        )

    w, h, cx, cy = whctrs(np.array([0, 0, base - 1, base - 1], dtype=np.float64))
    ws = np.round(np.sqrt(w * h / np.array(ratios)))
    hs = np.round(ws * np.array(ratios))
    out = []
    for anchor in mk(ws, hs, cx, cy):
        aw, ah, acx, acy = whctrs(anchor)
        out.append(
            mk(
                aw * np.array(scales, dtype=np.float64),
                ah * np.array(scales, dtype=np.float64),
                acx,
                acy,
            )
        )
    return np.concatenate(out)


def ref_decode(boxes, deltas):
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    cx = boxes[:, 0] + 0.5 * w
    cy = boxes[:, 1] + 0.5 * h
    out = torch.empty_like(deltas)
    for k in range(deltas.shape[1] // 4):
        dx, dy, dw, dh = (deltas[:, 4 * k + i] for i in range(4))
        px, py = dx * w + cx, dy * h + cy
        pw, ph = torch.exp(dw) * w, torch.exp(dh) * h
        out[:, 4 * k], out[:, 4 * k + 1] = px - 0.5 * pw, py - 0.5 * ph
        out[:, 4 * k + 2], out[:, 4 * k + 3] = px + 0.5 * pw, py + 0.5 * ph
    return out


def ref_clip(boxes, height, width):
    out = boxes.clone()
    out[:, 0::2] = out[:, 0::2].clamp(0, width - 1)
    out[:, 1::2] = out[:, 1::2].clamp(0, height - 1)
    return out


NMS_MARGINS: list[float] = []
"""|IoU - threshold| of every comparison ref_nms made: where one is within float rounding
of 0, float32 kernels may decide either way, and no test can ask for one answer."""


def ref_rpn(feat, sd, height, width, post_nms=POST_NMS):
    """Their test-time proposal layer: 6000 before NMS 0.7, post_nms after, zero-padded."""
    hidden = F.relu(
        F.conv2d(feat, sd["RCNN_rpn.RPN_Conv.weight"], sd["RCNN_rpn.RPN_Conv.bias"], padding=1)
    )
    score = F.conv2d(hidden, sd["RCNN_rpn.RPN_cls_score.weight"], sd["RCNN_rpn.RPN_cls_score.bias"])
    b, c, fh, fw = score.shape
    prob = F.softmax(score.view(b, 2, c // 2 * fh, fw), 1).view(b, c, fh, fw)
    deltas = F.conv2d(
        hidden, sd["RCNN_rpn.RPN_bbox_pred.weight"], sd["RCNN_rpn.RPN_bbox_pred.bias"]
    )
    num_anchors = c // 2
    fg = prob[:, num_anchors:]
    base = torch.from_numpy(ref_anchors()).float()
    anchors = []
    for y in range(fh):
        for x in range(fw):
            anchors.append(base + torch.tensor([x * 16.0, y * 16.0, x * 16.0, y * 16.0]))
    anchors = torch.cat(anchors)
    boxes = ref_decode(anchors, deltas.permute(0, 2, 3, 1).reshape(-1, 4))
    boxes = ref_clip(boxes, height, width)
    scores = fg.permute(0, 2, 3, 1).reshape(-1)
    order = torch.sort(scores, descending=True, stable=True).indices[:6000]
    boxes, scores = boxes[order], scores[order]
    keep = ref_nms(boxes, scores, 0.7, NMS_MARGINS)[:post_nms]
    out = torch.zeros(post_nms, 4)
    out[: len(keep)] = boxes[keep]
    return out


def ref_bilinear(feat, y, x):
    _, height, width = feat.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(feat.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return (
        hy * hx * feat[:, y0, x0]
        + hy * lx * feat[:, y0, x1]
        + ly * hx * feat[:, y1, x0]
        + ly * lx * feat[:, y1, x1]
    )


def ref_roi_align(feat, boxes, size=7, scale=1 / 16):
    """Their RoIAlign: not aligned, sampling grid ceil(roi / size) per bin."""
    out = torch.zeros(boxes.shape[0], feat.shape[1], size, size)
    for r, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        sx, sy, ex, ey = x1 * scale, y1 * scale, x2 * scale, y2 * scale
        rw, rh = max(ex - sx, 1.0), max(ey - sy, 1.0)
        bw, bh = rw / size, rh / size
        gw, gh = math.ceil(rw / size), math.ceil(rh / size)
        for ph in range(size):
            for pw in range(size):
                acc = torch.zeros(feat.shape[1])
                for iy in range(gh):
                    y = sy + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + pw * bw + (ix + 0.5) * bw / gw
                        acc += ref_bilinear(feat[0], y, x)
                out[r, :, ph, pw] = acc / (gh * gw)
    return out


def ref_detections(proposals, features, sd, height, width, scale, clip=True):
    """object_detector.py's SGDet rule on one frame (``clip``: whether their clip_boxes
    call reaches this frame: only the first of a batch)."""
    probs = F.softmax(F.linear(features, sd["RCNN_cls_score.weight"], sd["RCNN_cls_score.bias"]), 1)
    deltas = F.linear(features, sd["RCNN_bbox_pred.weight"], sd["RCNN_bbox_pred.bias"])
    deltas = (deltas.view(-1, 4) * torch.tensor([0.1, 0.1, 0.2, 0.2])).view(deltas.shape)
    boxes = ref_decode(proposals, deltas)
    boxes = (ref_clip(boxes, height, width) if clip else boxes) / scale
    out = {"boxes": [], "labels": [], "scores": [], "features": []}
    for j in range(1, probs.shape[1]):
        inds = torch.nonzero(probs[:, j] > 0.1).view(-1)
        if inds.numel() == 0:
            continue
        order = torch.sort(probs[inds, j], descending=True, stable=True).indices
        cls_boxes = boxes[inds][:, 4 * j : 4 * j + 4][order]
        keep = ref_nms(cls_boxes, probs[inds, j][order], 0.4, NMS_MARGINS)
        if j == 1:
            keep = keep[:1]
        for k in keep:
            out["boxes"].append(cls_boxes[k])
            out["labels"].append(j)
            out["scores"].append(float(probs[inds[order[k]], j]))
            out["features"].append(features[inds[order[k]]])
    return {
        "boxes": torch.stack(out["boxes"]).clamp(min=0),
        "labels": torch.tensor(out["labels"]),
        "scores": torch.tensor(out["scores"]),
        "features": torch.stack(out["features"]),
    }


# =========================================================================== fixtures
def frame(seed: int, height: int, width: int) -> torch.Tensor:
    """A smooth random RGB frame in [0, 1] (not a constant: the resize must matter)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 6 + 2, width // 6 + 2, generator=g)
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    rgb = (smooth + 0.1 * torch.rand(3, height, width, generator=g)).clamp(0, 1)
    return (rgb * 255).round().to(torch.uint8).float() / 255  # exact in 8 bits


GIVEN_BOXES = torch.tensor(
    [[4.0, 6.0, 40.0, 52.0], [20.0, 3.5, 70.0, 30.0], [0.0, 0.0, 75.0, 59.0]]
)


@pytest.fixture(scope="module")
def authors_state():
    return authors_model_state(seed=3)


@pytest.fixture(scope="module")
def authors_file(authors_state, tmp_path_factory):
    return write_authors_detector(
        tmp_path_factory.mktemp("release") / "faster_rcnn_ag.pth", authors_state
    )


@pytest.fixture(scope="module")
def release_cfg():
    return dataclasses.replace(
        release_detector_config(), min_size=MIN_SIZE, rpn_post_nms_top_n=POST_NMS
    )


@pytest.fixture(scope="module")
def converted(authors_file):
    return read_release_detector(authors_file)


@pytest.fixture(scope="module")
def network(release_cfg, converted):
    net = build_detector(release_cfg)
    net.load_state_dict(converted, strict=True)
    return net


@pytest.fixture(scope="module")
def image():
    return frame(11, 60, 76)


@pytest.fixture(scope="module")
def reference(authors_state, image):
    """Every stage of the reference on the test frame."""
    sd = authors_state
    with torch.no_grad():
        blob, scale = ref_blob(image)
        height, width = blob.shape[-2:]
        feat = ref_base(blob, sd)
        proposals = ref_rpn(feat, sd, height, width)
        prop_features = ref_head_to_tail(ref_roi_align(feat, proposals), sd)
        detections = ref_detections(proposals, prop_features, sd, height, width, scale)
        unclipped = ref_detections(proposals, prop_features, sd, height, width, scale, False)
        given = ref_head_to_tail(ref_roi_align(feat, GIVEN_BOXES * scale), sd)
    return {
        "blob": blob,
        "feat": feat,
        "proposals": proposals,
        "detections": detections,
        "unclipped": unclipped,
        "given": given,
    }


# =========================================================================== network
def run_network(net, image, stop: str = "detections", feat: torch.Tensor | None = None):
    """The release network's stages on one frame (as the extractor drives it); ``feat``:
    the body's output when known (a change after the body cannot alter it)."""
    with torch.no_grad():
        images_t, _ = net.transform([image])
        out = {"blob": images_t.tensors}
        feats = {"0": net.backbone(images_t.tensors) if feat is None else feat}
        out["feat"] = feats["0"]
        if stop == "feat":
            return out
        proposals, _ = net.rpn(images_t, feats)
        out["proposals"] = proposals[0]
        if stop == "proposals":
            return out
        results, _ = net.roi_heads(feats, proposals, images_t.image_sizes, scales=images_t.scales)
        out["detections"] = results[0]
        if stop == "detections":
            return out
        scaled = [GIVEN_BOXES * images_t.scales[0].repeat(2)]
        out["given"] = net.roi_heads.box_head(net.roi_heads.box_roi_pool(feats, scaled))
    return out


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def mismatch(out: dict, ref: dict, stage: str) -> str | None:
    """None when the network's output at ``stage`` matches the reference, else why not."""
    if stage == "feat":
        if out["feat"].shape != ref["feat"].shape:
            return f"feature map {tuple(out['feat'].shape)} vs {tuple(ref['feat'].shape)}"
        err = relative(out["feat"], ref["feat"])
        return None if err < 1e-4 else f"feature map differs by {err:.2e}"
    if stage == "proposals":
        a, b = out["proposals"], ref["proposals"]
        if a.shape != b.shape or not torch.allclose(a, b, atol=1e-3, rtol=0):
            return "proposals differ"
        return None
    if stage in ("detections", "given"):
        if stage == "given":
            err = relative(out["given"], ref["given"])
            return None if err < 1e-4 else f"pooled features differ by {err:.2e}"
        a, b = out["detections"], ref["detections"]
        if a["labels"].tolist() != b["labels"].tolist():
            return f"labels {a['labels'].tolist()} vs {b['labels'].tolist()}"
        if not torch.allclose(a["boxes"], b["boxes"], atol=1e-3, rtol=0):
            return "detection boxes differ"
        if not torch.allclose(a["scores"], b["scores"], atol=1e-5, rtol=0):
            return "scores differ"
        err = relative(a["features"], b["features"])
        return None if err < 1e-4 else f"detection features differ by {err:.2e}"
    raise ValueError(stage)


def test_converted_network_reproduces_the_authors_network(network, image, reference):
    out = run_network(network, image, stop="given")
    assert out["blob"].shape == reference["blob"].shape == (1, 3, 64, 81)  # no cap, no /32
    assert relative(out["blob"], reference["blob"]) < 1e-5
    for stage in ("feat", "proposals", "detections", "given"):
        assert mismatch(out, reference, stage) is None, stage
    proposals = reference["proposals"]
    padded = int((proposals.abs().sum(1) == 0).sum())
    labels = reference["detections"]["labels"].tolist()
    # the test exercises what it claims: several classes, one person, real proposals
    assert len(set(labels)) >= 3 and labels.count(1) == 1
    assert padded < POST_NMS


def test_proposals_are_zero_padded_to_the_post_nms_count(network, authors_state, image, reference):
    """More proposals asked for than the frame's 240 anchors: the rows after the last
    survivor are zero boxes, as the authors' fixed-size proposal output has them."""
    with torch.no_grad():
        blob = reference["blob"]
        ref = ref_rpn(reference["feat"], authors_state, *blob.shape[-2:], post_nms=300)
    network.rpn.post_nms_top_n = 300
    try:
        out = run_network(network, image, stop="proposals")["proposals"]
    finally:
        network.rpn.post_nms_top_n = POST_NMS
    assert out.shape == ref.shape == (300, 4)
    assert int((ref.abs().sum(1) == 0).sum()) >= 300 - 240
    assert torch.allclose(out, ref, atol=1e-3, rtol=0)


def test_only_the_first_frame_of_a_batch_is_clipped(network, network_feat, image, reference):
    """Their clip_boxes(..., batch_size=1) on a 10-frame batch: the second frame's boxes
    go through NMS unclipped (``detection_clip: first_of_batch``)."""
    assert network.roi_heads.clip_first_only
    unclipped = reference["unclipped"]
    clipped = reference["detections"]
    assert mismatch({"detections": unclipped}, {"detections": clipped}, "detections")  # it matters
    with torch.no_grad():
        images_t, _ = network.transform([image, image])
        feats = {"0": torch.cat([network_feat, network_feat])}
        proposals, _ = network.rpn(images_t, feats)
        results, _ = network.roi_heads(
            feats, proposals, images_t.image_sizes, scales=images_t.scales
        )
    for result, ref in zip(results, (reference["detections"], unclipped), strict=True):
        assert mismatch({"detections": result}, {"detections": ref}, "detections") is None


# =========================================================================== every step matters
def _stride_on_3x3(net, mp):
    for layer in (net.backbone.layer2, net.backbone.layer3, net.roi_heads.box_head.layer4):
        mp.setattr(layer[0].conv1, "stride", (1, 1))
        mp.setattr(layer[0].conv2, "stride", (2, 2))


def _torchvision_maxpool(net, mp):
    mp.setattr(net.backbone.maxpool, "padding", 1)
    mp.setattr(net.backbone.maxpool, "ceil_mode", False)


def _no_pixel_means(net, mp):
    net.transform.pixel_means.zero_()


def _rgb_order(net, mp):
    forward = rd.CaffeTransform.forward

    def rgb(self, images, targets=None):
        return forward(self, [im.flip(0) for im in images], targets)

    mp.setattr(rd.CaffeTransform, "forward", rgb)


def _resize_by_size_ratio(net, mp):
    def resize(image, scale):
        size = [round(image.shape[-2] * scale), round(image.shape[-1] * scale)]
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]

    mp.setattr(rd, "resize_like_opencv", resize)


def _corner_anchors(net, mp):
    net.rpn.cell_anchors.sub_(7.5)  # torchvision's anchors are centred on the cell corner


def _interleaved_rpn_scores(net, mp):
    conv = net.rpn.head.cls_logits
    a = conv.weight.shape[0] // 2
    order = torch.stack([torch.arange(a), torch.arange(a) + a], 1).reshape(-1)
    # the same channels read as (background, foreground) pairs per anchor
    conv.weight.copy_(conv.weight[order])
    conv.bias.copy_(conv.bias[order])


def _no_plus_one_boxes(net, mp):
    decode_legacy = rd.decode_legacy

    def decode(boxes, deltas):  # widths x2 - x1: decode the boxes one pixel narrower
        return decode_legacy(boxes - boxes.new_tensor([0.0, 0.0, 1.0, 1.0]), deltas)

    mp.setattr(rd, "decode_legacy", decode)


def _clip_to_width(net, mp):
    clip = rd.clip_legacy
    mp.setattr(rd, "clip_legacy", lambda boxes, h, w: clip(boxes, h + 1, w + 1))


def _nms_without_plus_one(net, mp):
    mp.setattr(rd, "nms_legacy", lambda b, s, t: rd.nms(b.float(), s.float(), t))


def _aligned_roi(net, mp):
    roi_align = rd.roi_align
    mp.setattr(rd, "roi_align", lambda *a, **k: roi_align(*a, **{**k, "aligned": True}))


def _fixed_sampling(net, mp):
    mp.setattr(net.roi_heads.box_roi_pool, "sampling_ratio", 2)


def _unscaled_offsets(net, mp):
    net.roi_heads.delta_stds.fill_(1.0)


def _every_person(net, mp):
    mp.setattr(rd, "PERSON", -1)


BROKEN = {
    "stride on the 3x3 convolution": (_stride_on_3x3, "feat"),
    "max-pool padded, rounding down": (_torchvision_maxpool, "feat"),
    "no pixel means": (_no_pixel_means, "feat"),
    "RGB instead of BGR": (_rgb_order, "feat"),
    "resize sampled by the size ratio": (_resize_by_size_ratio, "feat"),
    "anchors not centred at 7.5": (_corner_anchors, "proposals"),
    "RPN scores read as interleaved pairs": (_interleaved_rpn_scores, "proposals"),
    "box widths without +1": (_no_plus_one_boxes, "proposals"),
    "clipping to W / H": (_clip_to_width, "proposals"),
    "NMS areas without +1": (_nms_without_plus_one, "detections"),
    "RoIAlign aligned=True": (_aligned_roi, "detections"),
    "RoIAlign sampling ratio 2": (_fixed_sampling, "detections"),
    "box offsets not scaled by the stds": (_unscaled_offsets, "detections"),
    "every person kept": (_every_person, "detections"),
}


@pytest.fixture(scope="module")
def network_feat(network, image):
    return run_network(network, image, stop="feat")["feat"]


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_step_matters(name, network, network_feat, image, reference, monkeypatch):
    """Undo one step: the network no longer reproduces the reference (and it did at every
    earlier stage, so the difference is that step's)."""
    breaker, stage = BROKEN[name]
    # the tensors a breaker changes in place, restored after it
    touched = [*network.buffers(), *network.rpn.head.cls_logits.parameters()]
    saved = [t.clone() for t in touched]
    try:
        with torch.no_grad(), monkeypatch.context() as mp:  # patches undone on leaving
            breaker(network, mp)
            out = run_network(
                network, image, stop=stage, feat=None if stage == "feat" else network_feat
            )
    finally:
        with torch.no_grad():
            for tensor, value in zip(touched, saved, strict=True):
                tensor.copy_(value)
    assert mismatch(out, reference, stage) is not None, f"{name}: still matches"


def test_nms_plus_one_areas_on_small_boxes():
    """Two 3-px boxes one pixel apart: IoU 0.5 with +1 areas (both dropped at 0.4), 0.33
    without (both kept)."""
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]])
    scores = torch.tensor([0.9, 0.8])
    assert rd.nms_legacy(boxes, scores, 0.4).tolist() == ref_nms(boxes, scores, 0.4) == [0]
    assert rd.nms(boxes, scores, 0.4).tolist() == [0, 1]


def test_legacy_anchors_are_the_published_table():
    """generate_anchors.py lists Shaoqing Ren's MATLAB anchors (1-based) for scales 8, 16,
    32; the 0-based generator gives each value minus one."""
    matlab = torch.tensor(
        [
            [-83, -39, 100, 56], [-175, -87, 192, 104], [-359, -183, 376, 200],
            [-55, -55, 72, 72], [-119, -119, 136, 136], [-247, -247, 264, 264],
            [-35, -79, 52, 96], [-79, -167, 96, 184], [-167, -343, 184, 360],
        ],
        dtype=torch.float32,
    )  # fmt: skip
    assert torch.equal(rd.legacy_anchors((8, 16, 32), (0.5, 1, 2)), matlab - 1)
    assert torch.equal(
        rd.legacy_anchors((4, 8, 16, 32), (0.5, 1, 2)), torch.from_numpy(ref_anchors()).float()
    )


# =========================================================================== the extractor
def test_extractor_runs_the_release_detector(
    release_cfg, network, converted, image, reference, authors_state, tmp_path
):
    """``detector.architecture=release`` through the feature extractor, weights from a
    converted file through the ordinary detector-weights route: SGDet entities are the
    reference's detections with their proposal features; given boxes pool as theirs."""
    from tr2_core.models.extractor import FeatureExtractor
    from tr2_core.models.model_config import load_model_config
    from tr2_core.models.pair_features import UnionFeatureEncoder, create_clip

    path = tmp_path / "release-detector.pt"
    torch.save(converted, path)
    overrides = [
        "detector.architecture=release",
        "detector.backbone=resnet101",
        f"detector.min_size={MIN_SIZE}",
        "detector.max_size=null",
        "detector.anchor_sizes=[64,128,256,512]",
        "detector.aspect_ratios=[0.5,1.0,2.0]",
        "detector.rpn_pre_nms_top_n=6000",
        f"detector.rpn_post_nms_top_n={POST_NMS}",
        "detector.roi_output_size=7",
        "detector.roi_sampling_ratio=0",
        "detector.detections_per_image=null",
        "detector.detection_clip=first_of_batch",
        "representation.entity_dim=2048",
    ]
    cfg = load_model_config("tr2-small", overrides)
    assert dataclasses.asdict(cfg.detector) == dataclasses.asdict(
        dataclasses.replace(release_cfg, frames_per_batch=cfg.detector.frames_per_batch)
    )
    # the module's network stands in for build_detector(cfg.detector) (same config,
    # asserted above), weights at both ends scrambled so that only the file restores them
    scrambled = ("backbone.conv1.weight", "roi_heads.box_predictor.cls_score.weight")
    state = network.state_dict()
    union = UnionFeatureEncoder(create_clip(cfg.clip, random_init=True), cfg.clip)
    extractor = FeatureExtractor(network, union, cfg, random_init=True)
    try:
        with torch.no_grad():
            for key in scrambled:
                state[key].normal_()
        load_detector_weights(extractor.detector, path)
    finally:
        with torch.no_grad():
            for key in scrambled:
                state[key].copy_(converted[key])
    pixels = (image * 255).round().to(torch.uint8)
    assert torch.equal(pixels.float() / 255, image)  # the reference's frame, in 8 bits
    ref_det = reference["detections"]
    feats = extractor.extract([pixels])
    assert feats.entity_labels.tolist() == ref_det["labels"].tolist()
    assert torch.allclose(feats.entity_boxes, ref_det["boxes"], atol=1e-3, rtol=0)
    assert relative(feats.entity_features, ref_det["features"]) < 1e-4
    given = extractor.extract([pixels], [GIVEN_BOXES], [torch.tensor([1, 5, 9])])
    assert relative(given.entity_features, reference["given"]) < 1e-4
    # SGDet training: detections keep their proposal features, the GT boxes no detection
    # matched are pooled (their FINAL_FEATURES_X)
    train, entity_gt = extract_sgdet_training(
        extractor, [pixels], [GIVEN_BOXES], [torch.tensor([1, 5, 9])]
    )
    count = ref_det["labels"].shape[0]
    missed = sorted(set(range(3)) - set(entity_gt[:count].tolist()))
    assert missed and entity_gt[count:].tolist() == missed
    assert relative(train.entity_features[:count], ref_det["features"]) < 1e-4
    assert relative(train.entity_features[count:], reference["given"][missed]) < 1e-4
    # the release's relabelling (object_classifier.sgdet_labels=release): the reference's
    # detections through their object classifier's SGDet inference
    oc = dataclasses.replace(cfg.object_classifier, sgdet_labels="release")
    extractor.config = dataclasses.replace(cfg, object_classifier=oc)
    try:
        relabelled = extractor.extract([pixels])
    finally:
        extractor.config = cfg
    sd = authors_state
    logits = F.linear(ref_det["features"], sd["RCNN_cls_score.weight"], sd["RCNN_cls_score.bias"])
    dist = F.softmax(logits[:, 1:], 1)
    ref = ref_relabel([0] * count, ref_det["boxes"].tolist(), dist.tolist(), 1)
    assert relabelled.entity_labels.tolist() == [r[2] for r in ref]
    assert torch.allclose(relabelled.entity_boxes, torch.tensor([r[1] for r in ref]), atol=1e-3)
    assert relative(relabelled.entity_features, ref_det["features"][[r[4] for r in ref]]) < 1e-4
    assert torch.allclose(relabelled.entity_scores, torch.tensor([r[3] for r in ref]), atol=1e-5)
    assert relabelled.pair_subject.unique().tolist() == [relabelled.entity_labels.argmin().item()]


# =========================================================================== the file
def test_the_authors_file_converts_completely(authors_state, converted, network):
    kept = [k for k in authors_state if not k.endswith("num_batches_tracked")]
    assert len(converted) == len(kept) == len(network.state_dict())
    assert torch.equal(
        converted["backbone.layer3.22.bn3.running_var"],
        authors_state["RCNN_base.6.22.bn3.running_var"],
    )
    assert torch.equal(
        converted["rpn.head.cls_logits.weight"], authors_state["RCNN_rpn.RPN_cls_score.weight"]
    )


def _broken_file(authors_state, change):
    model = dict(authors_state)
    change(model)
    return authors_checkpoint(model)


def _rename(model):
    model["RCNN_base.6.7.conv2.weights"] = model.pop("RCNN_base.6.7.conv2.weight")


def _reshape(model):
    model["RCNN_bbox_pred.weight"] = model["RCNN_bbox_pred.weight"][:4]


def _drop(model):
    del model["RCNN_top.0.2.bn3.running_mean"]


def _extra(model):
    model["RCNN_base.6.23.conv1.weight"] = torch.zeros(256, 1024, 1, 1)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_rename, "model['RCNN_base.6.7.conv2.weights']: unused key"),
        (
            _reshape,
            "model['RCNN_bbox_pred.weight']: shape (4, 2048), the authors' network has (148, 2048)",
        ),
        (_drop, "model['RCNN_top.0.2.bn3.running_mean']: missing"),
        (_extra, "model['RCNN_base.6.23.conv1.weight']: unused key"),
    ],
)
def test_a_file_not_exactly_theirs_is_refused(authors_state, change, expected):
    with pytest.raises(WeightsError) as err:
        convert_detector(_broken_file(authors_state, change), "faster_rcnn_ag.pth")
    message = str(err.value)
    assert message.startswith("faster_rcnn_ag.pth: ") and expected in message
    assert "\n" not in message


def test_other_files_are_refused_with_a_reason(authors_state, converted, tmp_path):
    with pytest.raises(WeightsError, match="not the authors' detector file"):
        convert_detector({"state_dict": {}}, "x.pth")
    with pytest.raises(WeightsError, match="already converted"):
        convert_detector({"model": converted}, "x.pth")
    with pytest.raises(WeightsError, match="pooling_mode"):
        convert_detector({**authors_checkpoint(authors_state), "pooling_mode": "pool"}, "x.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="junk.pth: refused: not a readable torch file"):
        read_release_detector(junk)


def test_the_raw_file_through_detector_weights_says_how_to_convert(authors_file, network):
    with pytest.raises(WeightsError, match="convert it first"):
        load_detector_weights(network, authors_file)


# =========================================================================== the config
def test_release_only_settings_are_refused_elsewhere():
    from tr2_core.errors import ConfigError
    from tr2_core.models.model_config import DetectorConfig, load_model_config

    assert DetectorConfig().architecture == "torchvision"  # tr2's own stays the default
    with pytest.raises(ConfigError, match="detector.max_size=null needs"):
        load_model_config("tr2", ["detector.max_size=null"])
    with pytest.raises(ConfigError, match="bottleneck ResNet"):
        load_model_config(
            "tr2-release-detector", ["detector.backbone=resnet18", "representation.entity_dim=512"]
        )
    with pytest.raises(ConfigError, match="multiples of 16"):
        load_model_config("tr2-release-detector", ["detector.anchor_sizes=[64,100]"])
