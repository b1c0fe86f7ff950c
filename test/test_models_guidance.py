"""Prompts and the cached CLIP text-embedding table (tiny random CLIP)."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from model_fixtures import small_config

from tr2_core.cli import main
from tr2_core.errors import WeightsError
from tr2_core.models.guidance import (
    build_text_table,
    encode_prompts,
    load_text_table,
    prompt,
    prompt_grid,
    save_text_table,
)
from tr2_core.models.pair_features import create_clip
from tr2_core.vocab import OBJECT_INDEX, PREDICATE_INDEX


def test_prompts_readable_and_spatial_reversed():
    cup = OBJECT_INDEX["cup/glass/bottle"]
    assert (
        prompt(cup, PREDICATE_INDEX["looking_at"])
        == "a photo of a person looking at a cup or glass or bottle"
    )
    assert prompt(OBJECT_INDEX["closet/cabinet"], PREDICATE_INDEX["in_front_of"]) == (
        "a photo of a closet or cabinet in front of a person"
    )
    assert (
        prompt(OBJECT_INDEX["bed"], PREDICATE_INDEX["lying_on"])
        == "a photo of a person lying on a bed"
    )
    grid = prompt_grid()
    assert grid.shape == (37, 26) and grid[0, 0] == "" and len(set(grid[1:].ravel())) == 36 * 26


@pytest.fixture(scope="module")
def tiny_clip():
    cfg = small_config().clip
    return create_clip(cfg, random_init=True), open_clip.get_tokenizer(cfg.model_name)


def test_build_text_table_with_tiny_clip(tiny_clip, tmp_path):
    model, tokenizer = tiny_clip
    table = build_text_table(
        model, tokenizer, clip_name="ViT-B-32", clip_weights="random-init", progress=False
    )
    assert table.table.shape == (37, 26, 64)
    assert (table.table[0] == 0).all()
    bed, lying = OBJECT_INDEX["bed"], PREDICATE_INDEX["lying_on"]
    single = encode_prompts(
        model, tokenizer, ["a photo of a person lying on a bed"], progress=False
    )
    assert torch.allclose(table.table[bed, lying], single[0], atol=1e-5)
    assert not torch.allclose(table.table[bed, lying], table.table[bed, lying + 1])
    path = tmp_path / "table.npz"
    save_text_table(path, table)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert str(data["clip_model"]) == "ViT-B-32"
    loaded = load_text_table(path, expected_dim=64)
    assert torch.equal(loaded.table, table.table)
    assert (
        loaded.text_tower_sha256 == table.text_tower_sha256 and len(loaded.text_tower_sha256) == 64
    )
    assert loaded.prompts[bed, lying] == "a photo of a person lying on a bed"
    with pytest.raises(WeightsError, match="width 64"):
        load_text_table(path, expected_dim=512)


def test_load_text_table_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_text_table(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, table=np.zeros((36, 26, 8), np.float32))
    with pytest.raises(WeightsError, match="missing array"):
        load_text_table(bad)


def test_cli_prompts_writes_table(tmp_path, capsys):
    out = tmp_path / "t.npz"
    assert main(["prompts", "--model", "tr2-small", "--random-init", "--out", str(out)]) == 0
    table = load_text_table(out, expected_dim=64)
    assert table.clip_weights == "random-init" and table.table.shape == (37, 26, 64)
    assert "wrote" in capsys.readouterr().out
    # without weights and without --random-init: a clear error, no file
    missing = tmp_path / "m.npz"
    assert main(["prompts", "--model", "tr2-small", "--out", str(missing)]) == 2
    assert "no CLIP weights" in capsys.readouterr().err and not missing.exists()
