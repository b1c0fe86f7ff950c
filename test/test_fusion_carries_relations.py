"""The temporal fusion carries a pair's relation across frames where its own features
are noise: in every synthetic video the pair's attention class shows in the
union features of some frames and is pure noise in the others; the fused model must
recover it in the noisy frames clearly better than the variant without temporal fusion
(which can only guess there)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from model_fixtures import make_features, small_config

from tr2_core.models import create_relation_model

FRAMES, VIDEOS, STEPS = 8, 24, 60  # about 2 s of CPU per configuration
NO_FUSION = ("fusion.temporal_layers=0", "fusion.message_token=false")
# One entry per fusion configuration that must carry relations. The online (causal)
# model only sees the past: it is scored on the noisy frames that follow a visible one.
FUSED = {"bidirectional": (), "online": ("fusion.online=true", "fusion.temporal_window=0")}


def clip(seed: int, prototypes: torch.Tensor) -> tuple:
    """One video: a person and one object (same track) in FRAMES frames; the attention
    class (0..2) lives in the union features of the visible frames only. Returns
    (features, class, visible mask (T,))."""
    g = torch.Generator().manual_seed(seed)
    features = make_features([[5]] * FRAMES, tracks=[[1, 2]] * FRAMES, seed=seed)
    label = int(torch.randint(3, (1,), generator=g))
    visible = torch.rand(FRAMES, generator=g) < 0.5
    visible[int(torch.randint(FRAMES, (1,), generator=g))] = True  # seen at least once
    noise = torch.randn(FRAMES, prototypes.shape[1], generator=g)
    features.union_features = torch.where(visible[:, None], prototypes[label] + 0.3 * noise,
                                          noise)  # fmt: skip
    features.entity_features = torch.randn(features.entity_features.shape, generator=g).relu()
    return features, label, visible


def noisy_frame_accuracy(overrides: tuple[str, ...], *, past_only: bool = False) -> float:
    """Accuracy on the noisy frames of held-out videos (``past_only``: only those with a
    visible frame before them, all a causal model can know)."""
    torch.manual_seed(0)
    config = small_config("guidance.mode=none", *overrides)
    model = create_relation_model(config)
    prototypes = 3.0 * torch.randn(3, config.representation.union_dim,
                                   generator=torch.Generator().manual_seed(99))  # fmt: skip
    train = [clip(s, prototypes) for s in range(VIDEOS)]
    test = [clip(1000 + s, prototypes) for s in range(24)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(STEPS):
        features, label, _ = train[step % VIDEOS]
        out = model(features, mode="predcls")
        loss = F.cross_entropy(out.attention, torch.full((FRAMES,), label))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    right = total = 0
    with torch.no_grad():
        for features, label, visible in test:
            guess = model(features, mode="predcls").attention.argmax(1)
            scored = ~visible
            if past_only:
                scored &= visible.cumsum(0) > 0
            right += int((guess[scored] == label).sum())
            total += int(scored.sum())
    return right / total


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fusion_recovers_the_relation_in_noisy_frames(name, one_torch_thread):
    past_only = name == "online"
    fused = noisy_frame_accuracy(FUSED[name], past_only=past_only)
    alone = noisy_frame_accuracy(NO_FUSION, past_only=past_only)
    accuracies = f"noisy-frame accuracy: fused {fused:.2f}, without fusion {alone:.2f}"
    # without fusion a noisy frame is a guess among 3 classes (~33 %)
    assert alone < 0.6, accuracies
    assert fused > 0.7 and fused > alone + 0.25, accuracies
