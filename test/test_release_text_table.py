"""The authors' ``clip_sentence.npy`` -> tr2's text table: values exact, the authors'
prompts, bad files refused with a one-line reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tr2_core.errors import WeightsError
from tr2_core.models.guidance import load_text_table, save_text_table
from tr2_core.release.text_table import read_release_text_table, release_prompt_grid


def _release_table(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, (37, 26, 512)).astype(np.float16)


def test_values_survive_exactly_into_tr2s_table(tmp_path):
    source = tmp_path / "clip_sentence.npy"
    array = _release_table()
    np.save(source, array)
    table = read_release_text_table(source)
    out = tmp_path / "text_table.npz"
    save_text_table(out, table)
    loaded = load_text_table(out, expected_dim=512)
    assert loaded.table.dtype == torch.float32
    assert torch.equal(loaded.table, torch.from_numpy(array.astype(np.float32)))
    assert loaded.clip_model == "ViT-B-32-quickgelu"
    assert loaded.prompts[9, 13] == "a photo of a person having a closet or cabinet on the back"


def test_the_authors_prompts():
    grid = release_prompt_grid()
    assert grid.shape == (37, 26)
    assert grid[11, 5] == "a photo of a cup or glass or bottle in front of a person"
    assert grid[2, 18] == "a photo of a person and a bag"
    assert grid[24, 0] == "a photo of a person looking at a phone or camera"
    assert grid[5, 2] == "a photo of a person unsure a book"
    assert grid[0, 9] == "a photo of a person carrying a __background__"


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((37, 26, 256), np.float16), r"shape \(37, 26, 256\)"),
        (np.zeros((36, 26, 512), np.float16), r"shape \(36, 26, 512\)"),
        (np.zeros((37, 26, 512), np.int16), "dtype int16"),
        (np.full((37, 26, 512), np.inf, np.float16), "NaN/inf"),
        (np.array([{"a": 1}], dtype=object), "not a plain .npy"),
    ],
)
def test_bad_tables_are_refused(tmp_path, array, message):
    path = tmp_path / "clip_sentence.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(WeightsError, match=rf"clip_sentence\.npy: .*{message}"):
        read_release_text_table(path)


def test_an_npz_is_not_the_table(tmp_path):
    path = tmp_path / "clip_sentence.npy"
    with open(path, "wb") as f:
        np.savez(f, table=_release_table())
    with pytest.raises(WeightsError, match="archive of arrays"):
        read_release_text_table(path)
