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
