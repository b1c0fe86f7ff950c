"""tr2_core/cache_keys.py: cache folder keys are stable across releases of the code (a
changed key silently rebuilds every user's feature cache and pretrained weights), order
free, and follow every part and every annotation file."""

from __future__ import annotations

import os

import pytest

from tr2_core.cache_keys import annotation_stats, cache_key
from tr2_core.errors import DatasetError


def test_the_key_of_a_description_does_not_change():
    parts = {"task": "predcls", "annotations": [["a.pkl", 3, 7]]}
    assert cache_key(parts) == "b7d6893f9295417eab942351"  # keys written by earlier versions
    assert cache_key(dict(reversed(list(parts.items())))) == cache_key(parts)
    assert cache_key({**parts, "task": "sgcls"}) != cache_key(parts)


def test_annotation_stats_follow_each_file(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "b.pkl").write_bytes(b"12345")
    (ann / "a.txt").write_text("x")
    os.utime(ann / "a.txt", ns=(1_000, 2_000))
    stats = annotation_stats(tmp_path)
    assert [s[:2] for s in stats] == [["a.txt", 1], ["b.pkl", 5]] and stats[0][2] == 2_000
    (ann / "b.pkl").write_bytes(b"123456")
    assert cache_key({"a": annotation_stats(tmp_path)}) != cache_key({"a": stats})
    with pytest.raises(DatasetError, match="annotations folder not found"):
        annotation_stats(tmp_path / "nowhere")
