"""Loss terms as plain functions (paper III-C, III-D; Eq. 2 and Eq. 4).

``L = lambda * L_obj + L_rel + L_guidance`` with ``L_rel`` = attention
cross-entropy + spatial focal BCE + contacting focal BCE (per-pair focal form as the
authors, or per element; ``loss.focal_form``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.nn import functional as F

from tr2_core.models.model_config import ModelConfig
from tr2_core.models.relation_outputs import RelationOutput
from tr2_core.types import VideoFeatures, VideoTargets
from tr2_core.vocab import ATTENTION, CONTACTING, FAMILIES, SPATIAL, Family


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A zero that stays in the autograd graph of ``like``."""
    return like.sum() * 0.0


def object_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Entity cross-entropy. logits (N, 37), labels (N,) int64 (0 = background);
    mean over entities (0 when N == 0)."""
    if logits.shape[0] == 0:
        return _zero(logits)
    return F.cross_entropy(logits, labels)


def attention_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Attention cross-entropy. logits (P, 3), labels (P,) int64 with -1 = unlabelled
    (ignored); mean over labelled pairs (0 when none)."""
    keep = labels >= 0
    if not bool(keep.any()):
        return _zero(logits)
    return F.cross_entropy(logits[keep], labels[keep])


def focal_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: torch.Tensor | None = None,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Multi-label focal binary cross-entropy with per-class weights.

    For element (p, k) with ``q = sigmoid(logit)`` and ``q_t = q`` if the label is 1
    else ``1 - q``: ``l = -alpha_k * (1 - q_t) ** gamma * log(q_t)``; summed over the
    K classes and averaged over the P pairs (the authors' reduction).

    Args:
        logits: (P, K).
        targets: (P, K) float multi-hot.
        alpha: (K,) per-class weight (see :func:`alpha_from_counts`), None = 1.
        gamma: focusing parameter.
    """
    if logits.shape[0] == 0:
        return _zero(logits)
    targets = targets.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    q = torch.sigmoid(logits)
    q_t = q * targets + (1.0 - q) * (1.0 - targets)
    loss = (1.0 - q_t).pow(gamma) * bce
    if alpha is not None:
        loss = loss * alpha.to(loss)
    return loss.sum(dim=1).mean()


def pair_focal_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: torch.Tensor | None = None,
    gamma: float = 2.0,
    *,
    alpha_index_shift: bool = False,
) -> torch.Tensor:
    """The authors' multi-label focal loss: focal weighting per pair, not per element.

    Per pair p: ``L_p = sum_k BCE(sigmoid(logit[p, k]), target[p, k])``, then
    ``alpha_p * (1 - exp(-L_p)) ** gamma * L_p``, averaged over the P pairs. alpha_p is the
    mean of ``alpha`` over the pair's GT classes (1 when the pair has none: the alphas
    average 1; the authors' code would give NaN there). The BCE is computed in float32
    from logits (the authors apply ``binary_cross_entropy`` to sigmoid outputs; same
    value away from saturation, where theirs clamps log at -100).

    Args:
        logits: (P, K).
        targets: (P, K) float multi-hot.
        alpha: (K,) per-class weight (see :func:`alpha_from_counts`), None = 1.
        gamma: focusing parameter.
        alpha_index_shift: read the weight of class k at index k-1 (class 0 -> the last
            class), reproducing an off-by-one of the authors' release. Off unless asked.
    """
    if logits.shape[0] == 0:
        return _zero(logits)
    logits = logits.float()
    targets = targets.to(logits.dtype)
    per_pair = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=1)
    weight = torch.ones_like(per_pair)
    if alpha is not None:
        alpha = alpha.to(logits)
        if alpha_index_shift:
            alpha = torch.roll(alpha, shifts=1)  # alpha'[k] = alpha[k - 1], alpha'[0] = alpha[-1]
        count = targets.sum(dim=1)
        mean_alpha = (targets @ alpha) / count.clamp(min=1.0)
        weight = torch.where(count > 0, mean_alpha, weight)
    focal = (1.0 - torch.exp(-per_pair)).pow(gamma)
    return (weight * focal * per_pair).mean()


def relation_focal(
    logits: torch.Tensor, targets: torch.Tensor, alpha: torch.Tensor | None, loss_cfg
) -> torch.Tensor:
    """Spatial / contacting loss of the form chosen by ``loss_cfg.focal_form``
    (:class:`~tr2_core.models.model_config.LossConfig`): :func:`pair_focal_bce` or
    :func:`focal_bce`."""
    if loss_cfg.focal_form == "pair":
        return pair_focal_bce(
            logits,
            targets,
            alpha,
            loss_cfg.focal_gamma,
            alpha_index_shift=loss_cfg.alpha_index_shift,
        )
    if loss_cfg.alpha_index_shift:
        raise ValueError("loss.alpha_index_shift applies to loss.focal_form=pair only")
    return focal_bce(logits, targets, alpha, loss_cfg.focal_gamma)


def alpha_from_counts(counts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Per-class focal weights from positive-label counts (authors' formula):
    ``a = log(n) / sum(log(n))``, ``alpha = (1 / a) / mean(1 / a)`` — rarer classes
    weigh more, mean weight 1. Counts below 2 are clamped to 2 (log > 0)."""
    n = torch.as_tensor(counts, dtype=torch.float64).clamp(min=2.0)
    a = torch.log(n)
    a = a / a.sum()
    inv = 1.0 / a
    return (inv / inv.mean()).to(torch.float32)


# --------------------------------------------------------------------------- guidance
def family_targets(
    family: Family,
    pair_attention: torch.Tensor,
    pair_spatial: torch.Tensor,
    pair_contacting: torch.Tensor,
) -> torch.Tensor:
    """(P, family.size) float multi-hot GT of one family (attention as one-hot,
    all-zero where unlabelled)."""
    if family.name == ATTENTION.name:
        onehot = torch.zeros(pair_attention.shape[0], family.size, device=pair_attention.device)
        keep = pair_attention >= 0
        onehot[keep, pair_attention[keep]] = 1.0
        return onehot
    if family.name == SPATIAL.name:
        return pair_spatial.float()
    if family.name == CONTACTING.name:
        return pair_contacting.float()
    raise ValueError(f"unknown family {family.name!r}")


def text_targets(
    text_table: torch.Tensor,
    object_labels: torch.Tensor,
    multi_hot: torch.Tensor,
    family: Family,
    rows: str = "family",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text side of the guidance for one family.

    s[p] = mean over the pair's GT predicates k of ``text_table[object_labels[p],
    family.start + k]`` (``rows="family"``), or of row ``k`` (``"local"``: the release's
    family-local index into all 26 predicates; ``guidance.text_rows``).

    Args:
        text_table: (37, 26, D) CLIP text embeddings.
        object_labels: (P,) int64 GT object class of each pair.
        multi_hot: (P, family.size) GT labels of the family.
    Returns:
        s (P, D) and valid (P,) bool (the pair has at least one GT predicate).
    """
    columns = family.slice if rows == "family" else slice(0, family.size)
    emb = text_table[object_labels][:, columns]  # (P, K, D)
    weights = multi_hot.to(emb.dtype)
    count = weights.sum(dim=1)
    s = torch.einsum("pk,pkd->pd", weights, emb) / count.clamp(min=1.0)[:, None]
    return s, count > 0


def guidance_mse(
    visual: torch.Tensor,
    text: torch.Tensor,
    prev: torch.Tensor,
    valid: torch.Tensor,
    temporal_difference: bool = True,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. (2) (``temporal_difference=True``) or Eq. (4) (False) for one family.

    Over every row t with a previous element t-1 = ``prev[t]`` (``prev[t] != t``) of the
    same pair sequence, both with a text target:
    Eq. (2): mean of ``((v_t - v_{t-1}) - (s_t - s_{t-1}))^2``;
    Eq. (4): mean of ``(v_t - s_t)^2``. The mean runs over rows and the D dimensions
    (``nn.MSELoss``, as the authors); 0 when no row qualifies.

    Args:
        visual: (P, D) v = projected e_r.  text: (P, D) s.  prev: (P,) int64.
        valid: (P,) bool rows with a text target.
        bias: (D,) added to ``v_t - v_{t-1}`` in Eq. (2) (the release's biased projection
            of the difference); None: nothing added.
    """
    rows = torch.arange(prev.shape[0], device=prev.device)
    use = (prev != rows) & valid & valid[prev]
    if not bool(use.any()):
        return _zero(visual)
    if temporal_difference:
        dv = visual[use] - visual[prev[use]]
        if bias is not None:
            dv = dv + bias
        ds = text[use] - text[prev[use]]
        return F.mse_loss(dv, ds)
    return F.mse_loss(visual[use], text[use])


def change_bce(
    logits: torch.Tensor, multi_hot: torch.Tensor, prev: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """TR²ᵇⁱⁿ for one family: BCE of ``logits[t]`` against "the GT label set of the family
    differs between prev[t] and t", over rows with a previous element and labels at both
    ends. logits (P,), multi_hot (P, K), prev (P,), valid (P,) bool."""
    rows = torch.arange(prev.shape[0], device=prev.device)
    use = (prev != rows) & valid & valid[prev]
    if not bool(use.any()):
        return _zero(logits)
    changed = (multi_hot[use] != multi_hot[prev[use]]).any(dim=1).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits[use], changed)


def compute_losses(
    output: RelationOutput,
    features: VideoFeatures,
    targets: VideoTargets,
    text_table: torch.Tensor | None,
    config: ModelConfig,
    *,
    class_alpha: Mapping[str, torch.Tensor] | None = None,
    task: str | None = None,
) -> dict[str, torch.Tensor]:
    """All loss terms of one clip.

    Args:
        output: :class:`~tr2_core.models.relation_outputs.RelationOutput`.
        features: the :class:`~tr2_core.types.VideoFeatures` given to the model.
        targets: :class:`~tr2_core.types.VideoTargets` aligned with ``features``.
        text_table: (37, 26, D) CLIP text embeddings (or a
            :class:`~tr2_core.models.guidance.TextTable`); needed for guidance
            ``full`` / ``no_tdiff``.
        config: :class:`~tr2_core.models.model_config.ModelConfig` (``loss`` and ``guidance``).
        class_alpha: optional per-class focal weights ``{"spatial": (6,), "contacting": (17,)}``.
        task: ``predcls`` / ``sgcls`` / ``sgdet``: picks lambda
            (:meth:`~tr2_core.models.model_config.LossConfig.object_weight_for`).
    Returns:
        ``{"object", "attention", "spatial", "contacting", "guidance"}`` scalars; "object"
        already includes lambda and "guidance" its weight; inactive terms are 0.
    """
    alpha = dict(class_alpha or {})
    losses: dict[str, torch.Tensor] = {}
    if output.entity_logits is not None:
        losses["object"] = config.loss.object_weight_for(task) * object_ce(
            output.entity_logits, targets.entity_labels
        )
    else:
        losses["object"] = _zero(output.attention)
    losses["attention"] = attention_ce(output.attention, targets.pair_attention)
    losses["spatial"] = relation_focal(
        output.spatial, targets.pair_spatial, alpha.get(SPATIAL.name), config.loss
    )
    losses["contacting"] = relation_focal(
        output.contacting, targets.pair_contacting, alpha.get(CONTACTING.name), config.loss
    )
    losses["guidance"] = config.guidance.weight * guidance_loss(
        output, features, targets, text_table, config.guidance.mode, config.guidance.text_rows
    )
    return losses


def guidance_loss(
    output, features, targets, text_table, mode: str, text_rows: str = "family"
) -> torch.Tensor:
    """Sum over the three families of the guidance term selected by ``mode``
    (``none`` / ``full`` / ``no_tdiff`` / ``bin``); ``text_rows``: see
    :func:`text_targets`; ``output.guidance_bias`` (when set) enters Eq. (2)."""
    if mode == "none":
        return _zero(output.attention)
    prev = output.pair_prev
    total = _zero(output.attention)
    labels = [
        family_targets(f, targets.pair_attention, targets.pair_spatial, targets.pair_contacting)
        for f in FAMILIES
    ]
    if mode == "bin":
        if output.change_logits is None:
            raise ValueError("guidance mode 'bin' but the model output has no change_logits")
        for i, multi_hot in enumerate(labels):
            valid = multi_hot.sum(dim=1) > 0
            total = total + change_bce(output.change_logits[:, i], multi_hot, prev, valid)
        return total
    if mode not in ("full", "no_tdiff"):
        raise ValueError(f"unknown guidance mode {mode!r}")
    if output.guidance_visual is None:
        raise ValueError(f"guidance mode {mode!r} but the model output has no guidance_visual")
    if text_table is None:
        raise ValueError(f"guidance mode {mode!r} needs the text table (tr2 prompts)")
    table = getattr(text_table, "table", text_table).to(output.guidance_visual)
    object_labels = targets.entity_labels[features.pair_object]
    for i, (family, multi_hot) in enumerate(zip(FAMILIES, labels, strict=True)):
        s, valid = text_targets(table, object_labels, multi_hot, family, text_rows)
        bias = output.guidance_bias[i] if output.guidance_bias is not None else None
        total = total + guidance_mse(
            output.guidance_visual[i],
            s,
            prev,
            valid,
            temporal_difference=mode == "full",
            bias=bias,
        )
    return total
