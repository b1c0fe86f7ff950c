"""The object classifier's third input (``object_classifier.class_distribution``: the
detector's class distribution times a (36, D) table) trains from scratch: a new model
takes the frozen detector's own classification layer into its buffers, the table starts
from GloVe as the authors' (``obj_classes[1:]``), and a checkpoint keeps its own copy.
Small widths (tr2-small with the release's choices), random-init frozen parts, CPU."""

from __future__ import annotations

import pytest
import torch

from tr2_core.data.synthetic import SyntheticConfig, make_synthetic
from tr2_core.errors import ConfigError
from tr2_core.models import load_model_config
from tr2_core.models.glove import class_words
from tr2_core.run import (
    build_run_extractor,
    build_run_model,
    detector_classifier,
    fill_detector_classifier,
    load_trained,
)
from tr2_core.run_spec import RunSpec
from tr2_core.train.loop import train
from tr2_core.train.recipe import load_train_config
from tr2_core.vocab import OBJECT_CLASSES

RELEASE_SHAPED = (
    "detector.min_size=64",
    "detector.max_size=128",
    "object_classifier.class_distribution=true",
    "object_classifier.person=classifier",
    "guidance.text_rows=local",
    "guidance.difference_bias=true",
    "fusion.decoder_init=cloned",
    "loss.alpha_index_shift=true",
)
"""tr2-small with the choices of tr2-release (its third input on); small widths."""


def test_the_release_config_has_the_third_input_on():
    assert load_model_config("tr2-release").object_classifier.class_distribution
    assert not load_model_config("tr2").object_classifier.class_distribution


@pytest.fixture(scope="module")
def ag(tmp_path_factory):
    root = tmp_path_factory.mktemp("ag") / "synthetic"
    cfg = SyntheticConfig(videos=4, min_frames=3, max_frames=3, width=160, height=90, seed=2,
                          short_video_rate=0.0, no_person_rate=0.0)  # fmt: skip
    make_synthetic(root, cfg, progress=False)
    return root


def test_sgcls_trains_from_scratch_with_the_detectors_layer(ag, tmp_path, monkeypatch):
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache-home"))
    model_cfg = load_model_config("tr2-small", RELEASE_SHAPED)
    train_cfg = load_train_config("small", ("epochs=1", "max_train_videos=2", "max_val_videos=1"))
    run = RunSpec(data=str(ag), model="tr2-small", task="sgcls", random_init=True,
                  cache_dir=str(tmp_path / "features"))  # fmt: skip
    start = build_run_model(run, model_cfg, train_cfg.seed, torch.device("cpu"), announce=False)
    layer = detector_classifier(start.extractor)
    classifier = start.relation.object_classifier
    assert torch.equal(classifier.detector_cls_weight, layer.weight)
    assert torch.equal(classifier.detector_cls_bias, layer.bias)
    assert layer.weight.abs().sum() > 0  # a real layer, not the zeros the module starts with

    out = tmp_path / "run"
    train(out, run, model_cfg, train_cfg, device="cpu", progress=False)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    state = ckpt["model"]
    # the buffers stayed the detector's layer; the (36, D) table learned through them
    assert torch.equal(state["object_classifier.detector_cls_weight"], layer.weight)
    assert torch.equal(state["object_classifier.detector_cls_bias"], layer.bias)
    assert not torch.equal(
        state["object_classifier.class_embed.weight"], classifier.class_embed.weight
    )

    # loading keeps the checkpoint's own copy, exactly (here equal to the detector's)
    trained = load_trained(out / "last.pt", announce=False)
    loaded = trained.model.relation.object_classifier
    assert torch.equal(loaded.detector_cls_weight, state["object_classifier.detector_cls_weight"])
    assert torch.equal(loaded.class_embed.weight, state["object_classifier.class_embed.weight"])


def test_a_saved_copy_is_kept_over_another_detectors_layer(ag, tmp_path, caplog):
    """A checkpoint's buffers are the model's: a different layer in the detector built
    now does not replace them (it is logged)."""
    model_cfg = load_model_config("tr2-small", RELEASE_SHAPED)
    run = RunSpec(data=str(ag), model="tr2-small", task="sgcls", random_init=True)
    built = build_run_model(run, model_cfg, 0, torch.device("cpu"), announce=False)
    from dataclasses import asdict

    from tr2_core.config import to_dict

    state = built.relation.state_dict()
    state["object_classifier.detector_cls_bias"] = state["object_classifier.detector_cls_bias"] + 1
    config = {"run": asdict(run), "model": to_dict(model_cfg), "train": {"seed": 0}}
    ckpt = {"model": state, "epoch": 0, "config": config}
    torch.save(ckpt, tmp_path / "c.pt")
    trained = load_trained(tmp_path / "c.pt", announce=False)
    bias = trained.model.relation.object_classifier.detector_cls_bias
    assert torch.equal(bias, state["object_classifier.detector_cls_bias"])
    assert "differs from the layer of the detector built now" in caplog.text


def test_a_detector_layer_of_another_shape_is_refused(ag):
    model_cfg = load_model_config("tr2-small", RELEASE_SHAPED)
    run = RunSpec(data=str(ag), model="tr2-small", task="sgcls", random_init=True)
    built = build_run_model(run, model_cfg, 0, torch.device("cpu"), announce=False)
    built.extractor.detector.roi_heads.box_predictor.cls_score = torch.nn.Linear(256, 37)
    with pytest.raises(ConfigError, match=r"classification layer .* is \(37, 256\), the object "
                       r"classifier needs \(37, 512\)"):  # fmt: skip
        fill_detector_classifier(built)


def test_the_class_distribution_table_starts_from_glove_without_background(ag, tmp_path):
    """As the authors' ObjectClassifier: GloVe vectors of obj_classes[1:] (36 rows); the
    relation's (37, D) class embeddings get the same vectors with the background row."""
    dim = load_model_config("tr2-small").representation.class_embed_dim
    rng = torch.Generator().manual_seed(0)
    words = {class_words(name)[-1] for name in OBJECT_CLASSES[1:]}
    vectors = {w: torch.randn(dim, generator=rng) for w in sorted(words)}
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} {' '.join(f'{v:.6f}' for v in vec.tolist())}\n"
                             for w, vec in vectors.items()))  # fmt: skip
    model_cfg = load_model_config("tr2-small", RELEASE_SHAPED)
    run = RunSpec(data=str(ag), model="tr2-small", task="sgcls", random_init=True, glove=str(glove))
    built = build_run_model(run, model_cfg, 0, torch.device("cpu"), announce=False)
    table = built.relation.object_classifier.class_embed.weight
    assert table.shape == (36, dim)
    for row, name in enumerate(OBJECT_CLASSES[1:]):
        word = next(w for w in class_words(name) if w in vectors)
        torch.testing.assert_close(table[row], vectors[word], rtol=0, atol=1e-6)
    embed = built.relation.representation.subject_embed.weight
    assert torch.equal(embed[1:], table)
    extractor = build_run_extractor(run, model_cfg, 0, "cpu").extractor
    assert torch.equal(
        built.relation.object_classifier.detector_cls_weight,
        detector_classifier(extractor).weight,
    )
