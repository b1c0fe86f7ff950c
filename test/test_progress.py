"""Progress bars show on a terminal and stay out of logs (stderr not a terminal)."""

from __future__ import annotations

import io
import sys

import pytest

from tr2_core.data.action_genome import load_split
from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.progress import bar_disabled

CFG = SyntheticConfig(
    videos=4, min_frames=2, max_frames=3, width=64, height=48, seed=0, images=False
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("stream, shown", [(_Terminal, True), (_Log, False)])
def test_wanted_bars_show_only_on_a_terminal(tmp_path, monkeypatch, stream, shown) -> None:
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    make_synthetic(tmp_path / "ag", CFG, progress=True)
    load_split(tmp_path / "ag", "test", show_progress=True)
    text = err.getvalue()
    for bar in ("synthetic AG", "reading person_bbox.pkl", "parsing test"):
        assert (bar in text) == shown, (bar, text[:300])


def test_unwanted_bars_never_show(tmp_path, monkeypatch) -> None:
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    make_synthetic(tmp_path / "ag", CFG, progress=False)
    assert "synthetic AG" not in err.getvalue()
    assert bar_disabled(False) is True and bar_disabled(True) is None
