"""The online protocol's windows: every pair row predicted from its own past W frames.

Online TR² (``fusion.online``, docs/protocols.md) predicts the relations of frame t
from the encodings of frames t-W+1..t only, exactly as the streaming engine does with
its rolling window. Over a whole clip (training, validation, ``tr2 test``) that is one
short sequence per pair row: the elements of the row's pair sequence that lie in its
window, decoded with causal attention, the row itself being (one of) the last. The
expansion is index arithmetic on the sequence layout; the rows of the expanded layout
are the same ``(group, position)`` addresses the engine's window would give (the
position embedding is the slot in the window's sequence, the message token's previous
element is the previous one inside the window).
"""

from __future__ import annotations

import torch

from tr2_core.models.fusion import Grouping, SequenceLayout


def online_windows(
    layout: SequenceLayout, window: int
) -> tuple[torch.Tensor, SequenceLayout, torch.Tensor]:
    """One sequence per pair row: its pair's elements in frames ``(t - window, t]``
    (``window`` 0: all of frames ``<= t``), t being the row's frame.

    Elements of the row's own frame that come after it in its sequence (two entities
    sharing a class-label key) are included, as in the engine's window.

    Args:
        layout: the clip's sequence layout (P rows).
        window: W frames (>= 0).

    Returns:
        (rows (Q,) int64: the source row of every expanded element, the expanded layout
        (P sequences, Q rows), target (P,) int64: the expanded row that is pair row p).
    """
    seq = layout.grouping
    num = seq.group.shape[0]
    device = seq.group.device
    if num == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, SequenceLayout(Grouping(empty, empty, 0, 0), empty, empty), empty
    last = torch.iinfo(torch.long).max  # padding sorts after every frame
    frames, _ = seq.pad(layout.frame.long(), fill=last)  # (G, L), ascending per sequence
    source, _ = seq.pad(torch.arange(num, device=device), fill=-1)
    own = frames[seq.group].contiguous()  # (P, L): each row's own sequence
    frame = layout.frame.long().unsqueeze(1)
    stop = torch.searchsorted(own, frame, right=True).squeeze(1)
    if window > 0:
        start = torch.searchsorted(own, frame - window + 1).squeeze(1)
    else:
        start = torch.zeros_like(stop)
    length = stop - start  # >= 1: the row itself
    group = torch.repeat_interleave(torch.arange(num, device=device), length)
    offset = torch.cumsum(length, 0) - length
    position = torch.arange(group.shape[0], device=device) - offset[group]
    rows = source[seq.group[group], start[group] + position]
    prev = torch.arange(group.shape[0], device=device) - (position > 0).long()
    expanded = SequenceLayout(
        Grouping(group, position, num, int(length.max())), layout.frame[rows], prev
    )
    return rows, expanded, offset + seq.position - start
