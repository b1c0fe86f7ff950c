"""OpenAI's CLIP archive -> open_clip ``ViT-B-32-quickgelu``: read without running the
archive's code, every key accounted for, and the converted model reproduces OpenAI's
architecture (a plain reference forward) -- with QuickGELU only."""

from __future__ import annotations

import io
import pickle
import zipfile

import open_clip
import pytest
import torch
from release_fixtures import (
    SMALL_CLIP,
    OpenAICLIP,
    openai_clip,
    sample_clip_inputs,
    write_openai_archive,
)

from tr2_core.errors import WeightsError
from tr2_core.release.clip import OPENAI_CLIP_MODEL, convert_openai_clip, read_openai_clip
from tr2_core.release.torchscript import read_torchscript_tensors


@pytest.fixture(scope="module")
def reference():
    return openai_clip(seed=0)


@pytest.fixture(scope="module")
def archive(reference, tmp_path_factory):
    return write_openai_archive(reference, tmp_path_factory.mktemp("clip") / "ViT-B-32.pt")


def _open_clip(name: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = open_clip.create_model(name, pretrained=None, **SMALL_CLIP)
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_archive_tensors_equal_what_torch_jit_load_reads(archive):
    # torch.jit.load runs the archive's code: acceptable here, on a file this test wrote
    expected = torch.jit.load(str(archive)).state_dict()
    got = read_torchscript_tensors(archive)
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def test_converted_quickgelu_model_reproduces_openai_forward(reference, archive):
    state = convert_openai_clip(read_openai_clip(archive), str(archive), overrides=SMALL_CLIP)
    assert all(v.dtype == torch.float32 for v in state.values())
    model = _open_clip(OPENAI_CLIP_MODEL, state)
    image, text = sample_clip_inputs()
    with torch.no_grad():
        want_image, want_text = reference(image, text)
        assert torch.allclose(model.encode_image(image), want_image, atol=1e-5, rtol=1e-4)
        assert torch.allclose(model.encode_text(text), want_text, atol=1e-5, rtol=1e-4)
        # the same weights in open_clip's GELU model (tr2's default ViT-B-32) are not it
        gelu = _open_clip("ViT-B-32", state)
        assert (gelu.encode_image(image) - want_image).abs().max() > 1e-3
        assert (gelu.encode_text(text) - want_text).abs().max() > 1e-3


def test_clip_weights_inside_an_authors_checkpoint(reference, archive, tmp_path):
    half = {
        f"clip.{k}": v.half()
        for k, v in reference.state_dict().items()
        if k not in ("input_resolution", "context_length", "vocab_size")
    }
    path = tmp_path / "predcls.tar"
    torch.save({"state_dict": {"a4.weight": torch.zeros(2, 2), **half}}, path)
    from_checkpoint = convert_openai_clip(read_openai_clip(path), str(path), overrides=SMALL_CLIP)
    from_archive = convert_openai_clip(
        read_openai_clip(archive), str(archive), overrides=SMALL_CLIP
    )
    assert list(from_checkpoint) == list(from_archive)
    assert all(torch.equal(from_checkpoint[k], from_archive[k]) for k in from_archive)


def test_a_renamed_or_reshaped_key_is_refused(archive):
    state = read_openai_clip(archive)
    renamed = dict(state)
    renamed["visual.projection"] = renamed.pop("visual.proj")
    with pytest.raises(WeightsError, match="visual.proj"):
        convert_openai_clip(renamed, "f.pt", overrides=SMALL_CLIP)
    extra = {**state, "visual.extra": torch.zeros(1)}
    with pytest.raises(WeightsError, match="visual.extra"):
        convert_openai_clip(extra, "f.pt", overrides=SMALL_CLIP)
    reshaped = {**state, "ln_final.weight": torch.zeros(3)}
    with pytest.raises(WeightsError, match=r"f\.pt: CLIP weight ln_final\.weight has shape"):
        convert_openai_clip(reshaped, "f.pt", overrides=SMALL_CLIP)
    with pytest.raises(WeightsError, match="QuickGELU"):
        convert_openai_clip(state, "f.pt", model_name="ViT-B-32", overrides=SMALL_CLIP)


class _Payload:
    def __reduce__(self):
        return (print, ("executed",))


def _archive_with(tmp_path, data_pkl: bytes, storages: dict[str, bytes] | None = None):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", data_pkl)
        z.writestr("evil/code/__torch__.py", "")
        for key, raw in (storages or {}).items():
            z.writestr(f"evil/data/{key}", raw)
    return path


def test_an_archive_naming_another_global_is_refused_unrun(tmp_path, capsys):
    path = _archive_with(tmp_path, pickle.dumps(_Payload(), protocol=2))
    with pytest.raises(WeightsError, match=r"evil\.pt: data\.pkl names __builtin__\.print"):
        read_torchscript_tensors(path)
    assert "executed" not in capsys.readouterr().out


def _module_pickle(length: int, storage_numel: int) -> bytes:
    """data.pkl of a TorchScript module ``__torch__.M`` with one float tensor ``w`` of
    ``length`` elements on storage ``0`` of ``storage_numel`` elements."""
    import sys
    import types
    from collections import OrderedDict

    fake = types.ModuleType("__torch__")

    class M:
        def __reduce__(self):
            return (M, (), {"w": Tensor(), "training": False})

    class Tensor:
        def __reduce__(self):
            args = (Storage(), 0, (length,), (1,), False, OrderedDict())
            return (torch._utils._rebuild_tensor_v2, args)

    class Storage:
        pass

    M.__module__, M.__qualname__ = "__torch__", "M"
    fake.M = M

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", torch.FloatStorage, "0", "cpu", storage_numel)
            return None

    buffer = io.BytesIO()
    sys.modules["__torch__"] = fake
    try:
        Writer(buffer, protocol=2).dump(M())
    finally:
        del sys.modules["__torch__"]
    return buffer.getvalue()


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path):
    path = _archive_with(tmp_path, _module_pickle(4, 2), {"0": b"\x00" * 8})
    with pytest.raises(WeightsError, match=r"evil\.pt: tensor w \(4,\) reaches element 3"):
        read_torchscript_tensors(path)
    path = _archive_with(tmp_path, _module_pickle(2, 2), {"0": b"\x00" * 8})
    assert read_torchscript_tensors(path)["w"].shape == (2,)
    path = _archive_with(tmp_path, _module_pickle(2, 2), {"0": b"\x00" * 4})
    with pytest.raises(WeightsError, match="storage evil/data/0 holds 4 bytes"):
        read_torchscript_tensors(path)


def test_the_real_vit_b_32_layout_maps_key_for_key():
    """OpenAI's ViT-B/32 (embed 512, 224 px, patch 32, 12 x 768 image layers, 12 x 512
    text layers, vocabulary 49408) built on the meta device: its keys and shapes are
    those of open_clip's ViT-B-32-quickgelu, plus the three integer attributes."""
    from tr2_core.release.clip import ARCHIVE_ATTRIBUTES, open_clip_reference_state

    vit_b_32 = {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "layers": 12},
    }
    with torch.device("meta"):
        openai = OpenAICLIP(vit_b_32)
    theirs = {k: tuple(v.shape) for k, v in openai.state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in open_clip_reference_state().items()}
    assert set(theirs) - set(ours) == set(ARCHIVE_ATTRIBUTES)
    assert all(theirs[k] == shape for k, shape in ours.items())


def test_fp16_clip_is_openais_mixed_precision(reference, archive, tmp_path):
    """``clip.precision: fp16`` holds in float16 exactly the weights OpenAI's
    convert_weights makes float16 (LayerNorms and embeddings stay float32) and runs in
    float16, to one float16 step of OpenAI's fp16 forward."""
    import copy

    from release_fixtures import openai_convert_weights

    from tr2_core.models.model_config import ClipConfig
    from tr2_core.models.pair_features import create_clip

    path = tmp_path / "open_clip.pt"
    torch.save(convert_openai_clip(read_openai_clip(archive), str(archive),
                                   overrides=SMALL_CLIP), path)  # fmt: skip
    half_reference = openai_convert_weights(copy.deepcopy(reference))
    cfg = ClipConfig(model_name=OPENAI_CLIP_MODEL, overrides=SMALL_CLIP, precision="fp16")
    model = create_clip(cfg, pretrained=str(path))
    half = {k for k, v in model.state_dict().items() if v.dtype == torch.float16}
    want_half = {k for k, v in half_reference.state_dict().items() if v.dtype == torch.float16}
    assert half == want_half and "visual.ln_pre.weight" not in half
    image, _ = sample_clip_inputs()
    with torch.no_grad():
        got = model.encode_image(image.half())
        want = half_reference.encode_image(image)
    assert got.dtype == want.dtype == torch.float16
    step = 2.0**-10 * want.float().abs().clamp(min=1.0)  # one float16 step
    assert bool(((got.float() - want.float()).abs() <= 2 * step).all())
