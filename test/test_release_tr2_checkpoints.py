"""The authors' TR² checkpoints converted into tr2's relation model reproduce a plain
reference forward of the authors' relation model (test/release_fixtures.py) for all
three tasks; each conversion step is needed; malformed files are refused."""

from __future__ import annotations

import pytest
import torch
from release_fixtures import (
    RELEASE_WIDTHS,
    AuthorsTR2,
    authors_tr2,
    release_center_size,
    release_state_dict,
    release_tr2_base,
    save_release_checkpoint,
    save_release_detector,
)

from tr2_core.errors import WeightsError
from tr2_core.models.relation_model import RelationModel
from tr2_core.release.tr2_checkpoints import (
    VALUE_CHANGES,
    convert_release_relation,
    read_detector_classifier,
    read_release_checkpoint,
    release_model_config,
)
from tr2_core.types import VideoFeatures

TOL = 1e-4


def _scene(seed: int = 0, objects=(3, 2, 4)):
    """Entities of a 3-frame clip (a person first in each frame, then objects) with the
    detector's class distribution of each from the classification layer."""
    g = torch.Generator().manual_seed(seed)
    frame, labels = [], []
    for t, count in enumerate(objects):
        frame += [t] * (count + 1)
        labels += [1] + torch.randint(2, 37, (count,), generator=g).tolist()
    n = len(frame)
    xy = torch.rand(n, 2, generator=g) * 400
    wh = torch.rand(n, 2, generator=g) * 150 + 10
    return {
        "frame": torch.tensor(frame),
        "labels": torch.tensor(labels),
        "boxes": torch.cat([xy, xy + wh], 1),
        "features": torch.randn(n, RELEASE_WIDTHS["entity"], generator=g).relu(),
    }


def _pairs(frame: torch.Tensor, labels: torch.Tensor):
    """The authors' pairs: per frame its person x every other entity, in entity order."""
    pair, im_idx = [], []
    for t in range(int(frame.max()) + 1):
        rows = (frame == t).nonzero().squeeze(1).tolist()
        person = next(r for r in rows if labels[r] == 1)
        for r in rows:
            if r != person:
                pair.append([person, r])
                im_idx.append(t)
    return torch.tensor(pair), torch.tensor(im_idx)


def _features(scene, labels, pair, im_idx, union) -> VideoFeatures:
    n = scene["frame"].shape[0]
    return VideoFeatures(
        frame_keys=[f"v.mp4/{t:06d}.png" for t in range(int(scene["frame"].max()) + 1)],
        entity_frame=scene["frame"],
        entity_boxes=scene["boxes"],
        entity_labels=labels,
        entity_scores=torch.ones(n),
        entity_features=scene["features"],
        entity_track=torch.full((n,), -1),
        pair_frame=im_idx,
        pair_subject=pair[:, 0],
        pair_object=pair[:, 1],
        union_features=union,
    )


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    detector = save_release_detector(folder / "faster_rcnn_ag.pth")
    table = torch.randn(37, 26, RELEASE_WIDTHS["union"], generator=torch.Generator().manual_seed(5))
    models = {
        task: authors_tr2(task, seed=i) for i, task in enumerate(("predcls", "sgcls", "sgdet"))
    }
    files = {t: save_release_checkpoint(m, folder / f"{t}.tar") for t, m in models.items()}
    return {"models": models, "files": files, "detector": folder / "faster_rcnn_ag.pth",
            "detector_cls": detector, "table": table.half().float()}  # fmt: skip


def _tr2_model(release_files, task: str, value_changes=None) -> RelationModel:
    path = release_files["files"][task]
    config = release_model_config(task, release_tr2_base())
    state = convert_release_relation(
        read_release_checkpoint(path),
        str(path),
        task,
        config,
        text_table=release_files["table"],
        detector_cls=read_detector_classifier(release_files["detector"]),
        value_changes=value_changes,
    )
    model = RelationModel(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _distribution(scene, detector_cls) -> torch.Tensor:
    weight, bias = detector_cls
    return torch.softmax((scene["features"] @ weight.T + bias)[:, 1:], dim=1)


def _run_both(release_files, task: str, value_changes=None, seed: int = 0):
    authors: AuthorsTR2 = release_files["models"][task]
    scene = _scene(seed)
    labels = scene["labels"]
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        if task == "sgcls":
            dist = _distribution(scene, release_files["detector_cls"])
            labels, _, pair, im_idx = authors.object_classifier.sgcls(
                scene["features"], scene["boxes"], scene["frame"], dist
            )
        else:
            pair, im_idx = _pairs(scene["frame"], labels)
        union = torch.randn(pair.shape[0], RELEASE_WIDTHS["union"], generator=g)
        want = authors.relations(
            scene["features"], labels, pair, im_idx.float(), union, release_files["table"]
        )
        model = _tr2_model(release_files, task, value_changes)
        # SGCls: the given labels are ignored (tr2's classifier decides, as the authors')
        out = model(_features(scene, scene["labels"], pair, im_idx, union), mode=task)
    got = (out.attention, out.spatial.sigmoid(), out.contacting.sigmoid())
    return want, got, labels, out


def _max_diff(want, got) -> float:
    return max(float((w - g).abs().max()) for w, g in zip(want, got, strict=True))


@pytest.mark.parametrize("task", ["predcls", "sgcls", "sgdet"])
def test_converted_checkpoint_reproduces_the_authors_relation_outputs(release_files, task):
    for seed in (0, 1):
        want, got, labels, out = _run_both(release_files, task, seed=seed)
        assert _max_diff(want, got) < TOL
        if task == "sgcls":  # the object classifier's labels are the authors'
            assert torch.equal(out.entity_labels, labels)


def _classifier_logits(release_files, value_changes=None):
    """(authors' object-classifier logits, tr2's) on one scene."""
    authors = release_files["models"]["sgcls"].object_classifier
    model = _tr2_model(release_files, "sgcls", value_changes)
    scene = _scene(3)
    dist = _distribution(scene, release_files["detector_cls"])
    with torch.no_grad():
        box = authors.pos_embed(release_center_size(scene["boxes"]))
        inputs = torch.cat((scene["features"], dist @ authors.obj_embed.weight, box), 1)
        return authors.decoder_lin(inputs), model.object_classifier(
            scene["features"], scene["boxes"]
        )


def test_sgcls_object_classifier_logits_equal_the_authors(release_files):
    want, got = _classifier_logits(release_files)
    assert float((want - got).abs().max()) < TOL


@pytest.mark.parametrize("step", sorted(VALUE_CHANGES))
def test_each_value_change_is_needed(release_files, step):
    """Without the step the outputs leave the authors' by more than the tolerance."""
    without = {k: v for k, v in VALUE_CHANGES.items() if k != step}
    if step.startswith("object_classifier"):  # only the object classifier reads it
        want, got = _classifier_logits(release_files, without)
        assert float((want - got).abs().max()) > 10 * TOL
    else:
        want, got, _, _ = _run_both(release_files, "predcls", without)
        assert _max_diff(want, got) > 10 * TOL


def test_the_text_table_and_detector_layer_are_needed(release_files):
    path = release_files["files"]["predcls"]
    config = release_model_config("predcls", release_tr2_base())
    state = read_release_checkpoint(path)
    cls = read_detector_classifier(release_files["detector"])
    with pytest.raises(WeightsError, match="needs the text table"):
        convert_release_relation(state, str(path), "predcls", config, text_table=None,
                                 detector_cls=cls)  # fmt: skip
    with pytest.raises(WeightsError, match="classification layer"):
        convert_release_relation(state, str(path), "predcls", config,
                                 text_table=release_files["table"], detector_cls=None)  # fmt: skip


def _refusal(release_files, state, task="predcls"):
    config = release_model_config(task, release_tr2_base())
    return convert_release_relation(
        state, "predcls.tar", task, config, text_table=release_files["table"],
        detector_cls=release_files["detector_cls"],
    )  # fmt: skip


def test_a_renamed_key_is_refused(release_files):
    state = release_state_dict(release_files["models"]["predcls"])
    state["rff.att_fc9.weight"] = state.pop("rff.att_fc1.weight")
    with pytest.raises(WeightsError, match=r"^predcls\.tar: key rff\.att_fc9\.weight has no"):
        _refusal(release_files, state)


def test_a_missing_key_is_refused(release_files):
    state = release_state_dict(release_files["models"]["predcls"])
    del state["rff.att_fc1.weight"]
    with pytest.raises(WeightsError, match=r"^predcls\.tar: no weights for tr2's fusion\.message"):
        _refusal(release_files, state)


def test_a_changed_shape_is_refused(release_files):
    state = release_state_dict(release_files["models"]["predcls"])
    state["subj_fc.weight"] = state["subj_fc.weight"][:, :-1]
    with pytest.raises(WeightsError, match=r"^predcls\.tar: subj_fc\.weight has shape \(32, 511\)"):
        _refusal(release_files, state)


def test_another_tasks_file_is_refused(release_files):
    state = release_state_dict(release_files["models"]["sgdet"])
    with pytest.raises(WeightsError, match="a_rel_compress .SGDet. heads, not a predcls"):
        _refusal(release_files, state)


def test_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.tar"
    torch.save({"model": {}}, path)
    with pytest.raises(WeightsError, match=r"x\.tar: not an authors' TR² checkpoint"):
        read_release_checkpoint(path)


def test_paper_size_layout_maps_every_key():
    """The authors' module at their widths (2048 / 512 / 200 / 1936) on the meta device
    converts into tr2-release at paper size with every key accounted for."""
    widths = {"entity": 2048, "proj": 512, "embed": 200, "union": 512, "heads": 8,
              "ffn": 2048, "hidden": 1024, "enc": 1, "dec": 3}  # fmt: skip
    for task in ("predcls", "sgdet"):
        with torch.device("meta"):
            authors = AuthorsTR2(task, widths)
            table = torch.zeros(37, 26, 512)
            cls = (torch.zeros(37, 2048), torch.zeros(37))
        state = release_state_dict(authors)
        out = convert_release_relation(
            state, f"{task}.tar", task, release_model_config(task),
            text_table=table, detector_cls=cls,
        )  # fmt: skip
        assert out["fusion.message.fuse.weight"].shape == (1936, 3872)
        unused = [k for k in state if not k.startswith("clip.")]
        assert len(unused) + (2 if task == "sgdet" else 4) == len(out)


class _Payload:
    def __reduce__(self):
        return (print, ("executed",))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path, capsys):
    import pickle

    path = tmp_path / "predcls.tar"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"a4.weight": _Payload()}}, f, protocol=2)
    with pytest.raises(WeightsError, match=r"predcls\.tar: refused: it needs the Python obj") as e:
        read_release_checkpoint(path)
    assert "executed" not in capsys.readouterr().out
    assert "weights_only" not in str(e.value) and "\n" not in str(e.value)  # one line
