"""tr2_core/outputs.py, the staged outputs: published together at the end of a
successful run, or not at all; checked before any work. (The output rule itself is
tested on every command in test_hostile_io.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tr2_core.errors import Tr2Error
from tr2_core.outputs import (
    Output,
    OutputExistsError,
    OutputPathError,
    check_staged_outputs,
    staged_outputs,
)


def no_leftovers(*paths: Path) -> bool:
    return all(not p.exists() and not list(p.parent.glob(f".{p.name}*partial-*")) for p in paths)


def test_staged_outputs_publish_all_or_nothing(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        with staged_outputs([a, b]) as (sa, sb):
            sa.write_text("x")
            sb.mkdir()
            raise KeyboardInterrupt
    assert no_leftovers(a, b)
    with staged_outputs([a, b]) as (sa, sb):
        sa.write_text("x")
        sb.mkdir()
        assert not a.exists()  # not before the end
    assert a.read_text() == "x" and b.is_dir()
    assert sorted(tmp_path.iterdir()) == sorted([a, b])  # no staging folders left


def test_an_optional_output_left_unwritten_keeps_what_exists(tmp_path):
    jsonl, overlay = tmp_path / "o.jsonl", Output.folder(tmp_path / "ov", "--overlay", "png")
    with staged_outputs([jsonl, overlay], optional=[overlay]) as (staged_jsonl, _):
        staged_jsonl.write_text("{}\n")
    assert jsonl.read_text() == "{}\n" and not overlay.path.exists()
    with pytest.raises(Tr2Error, match="nothing was written"):
        with staged_outputs([tmp_path / "p.jsonl"]):
            pass
    assert no_leftovers(tmp_path / "p.jsonl")


def test_staged_outputs_are_checked_before_any_work(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"video")
    out = Output.file(tmp_path / "o.jsonl", "--jsonl")
    check_staged_outputs(out, inputs=[src], overwrite=False)  # a single output is fine
    with pytest.raises(OutputPathError, match="--jsonl"):
        check_staged_outputs(Output.file(src, "--jsonl"), inputs=[src], overwrite=True)
    with pytest.raises(Tr2Error, match="the folder .*missing does not exist"):
        check_staged_outputs(Output.file(tmp_path / "missing" / "o.jsonl", "--jsonl"),
                             inputs=[src], overwrite=False)  # fmt: skip
    out.path.write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with staged_outputs([out], inputs=[src]):
            raise AssertionError("the body must not run")
    with pytest.raises(OutputPathError, match="overlap"):
        check_staged_outputs([out, Output.file(out.path, "--other")], overwrite=True)
    assert out.path.read_text() == "old"
