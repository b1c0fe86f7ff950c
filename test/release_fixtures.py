"""Files laid out as the authors' release writes them, with random weights, and plain
reference forwards of the architectures they come from (no download).

OpenAI CLIP: the module tree, key names and shapes of openai/CLIP ``clip/model.py``
(ViT image tower, causal text transformer, QuickGELU, fp16 weights after
``convert_weights``), small widths; saved with ``torch.jit.trace`` as OpenAI's
``ViT-B-32.pt`` is.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

SMALL_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "head_width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 500, "width": 128, "heads": 2, "layers": 2},
}
"""open_clip overrides of the small OpenAI-layout CLIP below (heads = width // 64, as
OpenAI's ``build_model`` derives them)."""


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, attn_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = LayerNorm(width)
        self.attn_mask = attn_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.attn_mask.to(x.dtype) if self.attn_mask is not None else None
        x = (
            x
            + self.attn(
                self.ln_1(x), self.ln_1(x), self.ln_1(x), need_weights=False, attn_mask=mask
            )[0]
        )
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, attn_mask=None) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(
            *[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, resolution: int, patch: int, width: int, layers: int, out: int) -> None:
        super().__init__()
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((resolution // patch) ** 2 + 1, width)
        )
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, width // 64)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x.type(self.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = torch.cat([cls.to(x.dtype), x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class OpenAICLIP(nn.Module):
    """openai/CLIP ``model.CLIP`` (ViT variant): the reference forward of the tests."""

    def __init__(self, cfg: dict = SMALL_CLIP) -> None:
        super().__init__()
        v, t = cfg["vision_cfg"], cfg["text_cfg"]
        self.visual = VisionTransformer(
            v["image_size"], v["patch_size"], v["width"], v["layers"], cfg["embed_dim"]
        )
        n = t["context_length"]
        mask = torch.full((n, n), float("-inf")).triu_(1)
        self.transformer = Transformer(t["width"], t["layers"], t["width"] // 64, mask)
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.randn(n, t["width"]) * 0.01)
        self.ln_final = LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.randn(t["width"], cfg["embed_dim"]) * 0.1)
        self.logit_scale = nn.Parameter(torch.ones([]) * 4.6052)
        # the integer attributes OpenAI's archive carries beside the weights
        self.register_buffer("input_resolution", torch.tensor(v["image_size"]))
        self.register_buffer("context_length", torch.tensor(n))
        self.register_buffer("vocab_size", torch.tensor(t["vocab_size"]))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image: torch.Tensor, text: torch.Tensor):
        return self.encode_image(image), self.encode_text(text)


def openai_clip(seed: int = 0, cfg: dict = SMALL_CLIP) -> OpenAICLIP:
    """A random OpenAI-layout CLIP with fp16-representable weights (the released file
    is fp16), kept in float32 for the reference forward."""
    torch.manual_seed(seed)
    model = OpenAICLIP(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def sample_clip_inputs(cfg: dict = SMALL_CLIP, seed: int = 1):
    """(images (2, 3, S, S), token ids (2, 77) with an end token as the maximum)."""
    g = torch.Generator().manual_seed(seed)
    size = cfg["vision_cfg"]["image_size"]
    vocab, n = cfg["text_cfg"]["vocab_size"], cfg["text_cfg"]["context_length"]
    text = torch.zeros(2, n, dtype=torch.long)
    text[:, :6] = torch.randint(1, vocab - 1, (2, 6), generator=g)
    text[:, 6] = vocab - 1
    return torch.randn(2, 3, size, size, generator=g), text


def write_openai_archive(model: OpenAICLIP, path: Path) -> Path:
    """``torch.jit.trace`` of the fp16 model saved as OpenAI's ``ViT-B-32.pt`` is."""
    import copy
    import warnings

    half = copy.deepcopy(model).half()
    image, text = sample_clip_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(half.float(), (image, text), check_trace=False)
        half_traced = traced.half()
    half_traced.save(str(path))
    return path


# --------------------------------------------------------------------------- TR² release
# The authors' TR2 module (qncsn2016/TR2 lib/models/tr2_model.py, feature_fusion.py,
# object_classifier.py): module and key names as theirs, widths as parameters (their
# values: entity 2048, projections 512, class embeddings 200, union 512, 8 heads, FFN
# 2048, object-classifier hidden 1024, one encoder and three decoder layers).

RELEASE_WIDTHS = {"entity": 512, "proj": 32, "embed": 16, "union": 64, "heads": 8,
                  "ffn": 128, "hidden": 64, "enc": 1, "dec": 3}  # fmt: skip
"""Small widths of the test files (d_model = 64 + 2*32 + 2*16 = 160)."""


def _torchvision_detector() -> tuple[str, ...]:
    import json

    from tr2_core.config import to_dict
    from tr2_core.models.model_config import load_model_config

    section = to_dict(load_model_config("tr2").detector)
    return tuple(f"detector.{k}={json.dumps(v)}" for k, v in section.items() if k != "weights")


_TORCHVISION_DETECTOR = _torchvision_detector()
"""At the test files' small widths a torchvision ResNet-18 detector stands in for the
authors' ResNet-101 (whose conversion test_release_detector.py checks)."""

RELEASE_TR2_OVERRIDES = (
    *_TORCHVISION_DETECTOR,
    "detector.backbone=resnet18",
    "representation.entity_dim=512",
    "representation.union_dim=64",
    "representation.entity_proj_dim=32",
    "representation.class_embed_dim=16",
    "fusion.heads=8",
    "fusion.ffn_dim=128",
    "object_classifier.hidden_dim=64",
)
"""tr2-release overrides giving the widths of :data:`RELEASE_WIDTHS`."""


def release_tr2_base():
    """tr2-release at the test files' widths (CLIP: :data:`SMALL_CLIP`)."""
    import json

    from tr2_core.models.model_config import load_model_config

    clip = "clip.overrides=" + json.dumps(SMALL_CLIP)
    return load_model_config("tr2-release", (*RELEASE_TR2_OVERRIDES, clip))


def release_center_size(boxes: torch.Tensor) -> torch.Tensor:
    """lib/fpn/box_utils.py center_size: w = x2 - x1 + 1."""
    wh = boxes[:, 2:] - boxes[:, :2] + 1.0
    return torch.cat((boxes[:, :2] + 0.5 * wh, wh), 1)


def timing_signal(length: int, channels: int) -> torch.Tensor:
    """lib/models/utils.py get_timing_signal_1d (min 1, max 1e4 timescale)."""
    import math

    position = torch.arange(length).float()
    num = float(channels // 2)
    increment = math.log(1.0e4) / (num - 1)
    inv = torch.exp(torch.arange(num).float() * -increment)
    scaled = position.unsqueeze(1) * inv.unsqueeze(0)
    signal = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)
    return nn.functional.pad(signal, (0, channels % 2, 0, 0)).view(length, channels)


class AuthorsEncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=0.1)
        self.linear1 = nn.Linear(d, ffn)
        self.dropout = nn.Dropout(0.1)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout1 = nn.Dropout(0.1)
        self.dropout2 = nn.Dropout(0.1)

    def forward(self, src, padding):
        src2 = self.self_attn(src, src, src, key_padding_mask=padding)[0]
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(nn.functional.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class AuthorsDecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.multihead2 = nn.MultiheadAttention(d, heads, dropout=0.1, batch_first=True)
        self.linear1 = nn.Linear(d, ffn)
        self.dropout = nn.Dropout(0.1)
        self.linear2 = nn.Linear(ffn, d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout2 = nn.Dropout(0.1)
        self.dropout3 = nn.Dropout(0.1)

    def forward(self, x, padding, pos):
        tgt2 = self.multihead2(x + pos, x + pos, x, key_padding_mask=padding)[0]
        tgt = self.norm3(x + self.dropout2(tgt2))
        tgt2 = self.linear2(self.dropout(nn.functional.relu(self.linear1(tgt))))
        return tgt + self.dropout3(tgt2)


class _Layers(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class AuthorsRelFeatFusion(nn.Module):
    """feature_fusion.py RelFeatFusion, eval-mode forward."""

    def __init__(self, d: int, heads: int, ffn: int, enc: int, dec: int) -> None:
        super().__init__()
        self.encoder = _Layers([AuthorsEncoderLayer(d, heads, ffn) for _ in range(enc)])
        self.decoder = _Layers([AuthorsDecoderLayer(d, heads, ffn) for _ in range(dec)])
        self.diff_two_fc = nn.Linear(2 * d, d)
        self.att_fc1 = nn.Linear(d, d)
        self.att_fc2 = nn.Linear(d, d)

    def forward(self, features, im_idx, obj_label):
        d = features.shape[1]
        frames = int(im_idx.max()) + 1
        per_frame = [int((im_idx == i).sum()) for i in range(frames)]
        longest = max(per_frame)
        # spatial encoder over each frame's relations, (L, B, d) with key padding
        padded = torch.zeros(longest, frames, d)
        padding = torch.ones(frames, longest, dtype=torch.bool)
        for i in range(frames):
            padded[: per_frame[i], i] = features[im_idx == i]
            padding[i, : per_frame[i]] = False
        for layer in self.encoder.layers:
            padded = layer(padded, padding)
        encoded = padded.permute(1, 0, 2).reshape(-1, d)[~padding.reshape(-1)]
        # regroup by object label, in row order
        labels = [int(v) for v in obj_label]
        groups = sorted(set(labels))
        rows = {g: [i for i, v in enumerate(labels) if v == g] for g in groups}
        length = max(len(r) for r in rows.values())
        seq = torch.zeros(len(groups), length, d)
        pad = torch.ones(len(groups), length, dtype=torch.bool)
        for n, g in enumerate(groups):
            seq[n, : len(rows[g])] = encoded[rows[g]]
            pad[n, : len(rows[g])] = False
        pos = timing_signal(length, d).unsqueeze(0)
        for layer in self.decoder.layers:
            seq = layer(seq, pad, pos)
        # short-term message token
        d0 = torch.cat((torch.zeros_like(seq[:, :1]), seq[:, :-1]), 1)
        gate = torch.tanh(self.att_fc2(torch.tanh(self.att_fc1(self.diff_two_fc(
            torch.cat((d0, seq), -1))))))  # fmt: skip
        mul = torch.cat((seq[:, :1], seq[:, :-1]), 1)
        token = torch.cat((seq, gate * mul), -1)
        out = torch.zeros(features.shape[0], 2 * d)
        for n, g in enumerate(groups):
            for k, row in enumerate(rows[g]):
                out[row] = token[n, k]
        return out


class AuthorsObjectClassifier(nn.Module):
    """object_classifier.py ObjectClassifier (parameters; SGCls eval label decision)."""

    def __init__(self, w: dict) -> None:
        super().__init__()
        self.obj_embed = nn.Embedding(36, w["embed"])
        self.pos_embed = nn.Sequential(
            nn.BatchNorm1d(4, momentum=0.001), nn.Linear(4, 128), nn.ReLU(), nn.Dropout(0.1)
        )
        self.decoder_lin = nn.Sequential(
            nn.Linear(w["entity"] + w["embed"] + 128, w["hidden"]),
            nn.BatchNorm1d(w["hidden"]),
            nn.ReLU(),
            nn.Linear(w["hidden"], 37),
        )

    def sgcls(self, features, boxes, box_frame, distribution):
        """-> pred_labels (N,), pred_scores (N,), pair (P, 2), im_idx (P,)."""
        obj_embed = distribution @ self.obj_embed.weight
        pos_embed = self.pos_embed(release_center_size(boxes))
        logits = self.decoder_lin(torch.cat((features, obj_embed, pos_embed), 1))
        dist = torch.softmax(logits[:, 1:], dim=1)
        scores, labels = torch.max(dist[:, 1:], dim=1)
        labels = labels + 2
        frames = int(box_frame[-1] + 1)
        index = torch.arange(features.shape[0])
        human = [int(index[box_frame == i][torch.argmax(dist[box_frame == i, 0])])
                 for i in range(frames)]  # fmt: skip
        labels[human] = 1
        scores[human] = dist[human, 0]
        for i in range(frames):
            present = box_frame == i
            duplicate = torch.mode(labels[present])[0]
            position = labels[present] == duplicate
            order = torch.argsort(dist[present][position][:, duplicate - 1])[:-1]
            for j in order:
                changed = index[present][position][j]
                dist[changed, duplicate - 1] = 0
                labels[changed] = torch.argmax(dist[changed]) + 1
                scores[changed] = torch.max(dist[changed])
        pair, im_idx = [], []
        for j, h in enumerate(human):
            for m in index[box_frame == j][labels[box_frame == j] != 1]:
                im_idx.append(j)
                pair.append([h, int(m)])
        return labels, scores, torch.tensor(pair), torch.tensor(im_idx)


class AuthorsTR2(nn.Module):
    """tr2_model.py TR2: parameters in the authors' names; :meth:`relations` is the
    eval forward after the object classifier."""

    def __init__(self, mode: str, w: dict = RELEASE_WIDTHS, clip: nn.Module | None = None):
        super().__init__()
        self.mode = mode
        self.object_classifier = AuthorsObjectClassifier(w)
        self.subj_fc = nn.Linear(w["entity"], w["proj"])
        self.obj_fc = nn.Linear(w["entity"], w["proj"])
        self.obj_embed = nn.Embedding(37, w["embed"])
        self.obj_embed2 = nn.Embedding(37, w["embed"])
        d = 2 * w["proj"] + 2 * w["embed"] + w["union"]
        self.rff = AuthorsRelFeatFusion(d, w["heads"], w["ffn"], w["enc"], w["dec"])
        if mode == "sgdet":
            self.a_rel_compress = nn.Linear(2 * d, 3)
            self.s_rel_compress = nn.Linear(2 * d, 6)
            self.c_rel_compress = nn.Linear(2 * d, 17)
        else:
            self.a4 = nn.Linear(2 * d, w["union"])
            self.s4 = nn.Linear(2 * d, w["union"])
            self.c4 = nn.Linear(2 * d, w["union"])
        self.change_adiff = nn.Linear(2 * d, w["union"])
        self.change_sdiff = nn.Linear(2 * d, w["union"])
        self.change_cdiff = nn.Linear(2 * d, w["union"])
        self.clip = clip if clip is not None else OpenAICLIP()

    def relations(self, features_1d, pred_labels, pair, im_idx, union_feat, clip_sentence):
        """-> (attention logits, spatial sigmoid, contacting sigmoid)."""
        subj = self.subj_fc(features_1d[pair[:, 0]])
        obj = self.obj_fc(features_1d[pair[:, 1]])
        subj_class, obj_class = pred_labels[pair[:, 0]], pred_labels[pair[:, 1]]
        rel = torch.cat((union_feat, subj, obj, self.obj_embed(subj_class),
                         self.obj_embed2(obj_class)), dim=1)  # fmt: skip
        out = self.rff(rel, im_idx, obj_class)
        text = clip_sentence[obj_class].transpose(1, 2)
        at, st, ct = text[:, :, :3], text[:, :, 3:9], text[:, :, 9:]
        if self.mode == "sgdet":
            a, s, c = self.a_rel_compress(out), self.s_rel_compress(out), self.c_rel_compress(out)
        else:
            a = torch.matmul(self.a4(out).unsqueeze(1), at).squeeze(1)
            s = torch.matmul(self.s4(out).unsqueeze(1), st).squeeze(1)
            c = torch.matmul(self.c4(out).unsqueeze(1), ct).squeeze(1)
        return a, torch.sigmoid(s), torch.sigmoid(c)


def authors_tr2(mode: str, seed: int = 0) -> AuthorsTR2:
    """A random authors' TR2 in eval mode with trained-looking BatchNorm statistics and
    fp16 CLIP weights (as their checkpoints hold them)."""
    torch.manual_seed(seed)
    model = AuthorsTR2(mode)
    with torch.no_grad():
        for bn in (model.object_classifier.pos_embed[0], model.object_classifier.decoder_lin[1]):
            bn.running_mean.normal_(0, 1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_(1, 0.1)
            bn.bias.normal_(0, 0.1)
            bn.num_batches_tracked.fill_(1234)
        model.object_classifier.pos_embed[0].running_mean.copy_(torch.tensor([300.0, 200, 80, 120]))
        model.object_classifier.pos_embed[0].running_var.copy_(torch.tensor([9e3, 4e3, 2e3, 3e3]))
        for p in model.clip.parameters():
            p.copy_(p.half().float())
    return model.eval()


def release_state_dict(model: AuthorsTR2) -> dict[str, torch.Tensor]:
    """``TR2.state_dict()`` as their train.py saves it: CLIP fp16 (``clip.load`` on the
    GPU keeps OpenAI's fp16 weights), without the archive's integer attributes."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("clip."):
            if key[5:] in ("input_resolution", "context_length", "vocab_size"):
                continue
            value = value.half()
        state[key] = value.clone()
    return state


def save_release_checkpoint(model: AuthorsTR2, path: Path) -> Path:
    torch.save({"state_dict": release_state_dict(model)}, path)
    return path


def save_release_detector(path: Path, entity_dim: int = 512, seed: int = 3):
    """A faster-rcnn.pytorch-style file holding (only) the classification layer the
    object classifier's third input needs: ``{"model": {...}, "epoch": ..}``."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(37, entity_dim, generator=g) * 0.05
    bias = torch.randn(37, generator=g) * 0.1
    torch.save({"epoch": 7, "model": {"RCNN_cls_score.weight": weight,
                                      "RCNN_cls_score.bias": bias}}, path)  # fmt: skip
    return weight, bias


def openai_convert_weights(model: nn.Module) -> nn.Module:
    """clip/model.py convert_weights: convolution, linear and attention weights and the
    two projections to float16; LayerNorms and embeddings stay float32."""

    def half(layer: nn.Module) -> None:
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            layer.weight.data = layer.weight.data.half()
            if layer.bias is not None:
                layer.bias.data = layer.bias.data.half()
        if isinstance(layer, nn.MultiheadAttention):
            for name in ("in_proj_weight", "in_proj_bias"):
                tensor = getattr(layer, name)
                if tensor is not None:
                    tensor.data = tensor.data.half()
        for name in ("text_projection", "proj"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                tensor.data = tensor.data.half()

    model.apply(half)
    return model
