"""The release's SGCls re-pairing (``object_classifier.sgcls_pairs: classifier``): the
pairs re-formed around the person the classifier chose, against a plain transcription of
the authors' object classifier at SGCls inference, and the union features that makes it
possible (``with_other_pairs``)."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import make_features, small_config

from tr2_core.errors import ConfigError
from tr2_core.models import RelationModel, create_extractor
from tr2_core.models.pair_features import stack_frames
from tr2_core.models.pairs import other_pairs, pairs_around, union_boxes
from tr2_core.vocab import PERSON

RELEASE = ("object_classifier.person=classifier", "object_classifier.sgcls_pairs=classifier")


def ref_sgcls_pairs(logits: torch.Tensor, entity_frame: list[int]) -> list[tuple[int, int]]:
    """Their ObjectClassifier.forward (sgcls, eval) as loops: labels, the person, the
    duplicate relabelling, then (person, every box not labelled person) per frame."""
    dist = logits[:, 1:].softmax(1).tolist()
    num = len(dist)
    labels = [max(range(35), key=lambda k: (d[1:][k], -k)) + 2 for d in dist]
    frames = sorted(set(entity_frame))
    human = {}
    for f in frames:
        rows = [r for r in range(num) if entity_frame[r] == f]
        human[f] = max(rows, key=lambda r: (dist[r][0], -r))
        labels[human[f]] = PERSON
    for f in frames:
        rows = [r for r in range(num) if entity_frame[r] == f]
        values = [labels[r] for r in rows]
        mode = min(values, key=lambda v: (-values.count(v), v))  # torch.mode: the smallest
        same = [r for r in rows if labels[r] == mode]
        for r in sorted(same, key=lambda r: dist[r][mode - 1])[:-1]:
            dist[r][mode - 1] = 0.0
            labels[r] = max(range(36), key=lambda k: (dist[r][k], -k)) + 1
    return [
        (human[f], m)
        for f in frames
        for m in range(num)
        if entity_frame[m] == f and labels[m] != PERSON
    ]


def crafted_logits(features, seed: int) -> torch.Tensor:
    """Logits where, in some frames, an object looks more like a person than the given
    person box, and duplicates are common (few classes in play)."""
    g = torch.Generator().manual_seed(seed)
    n = features.entity_frame.shape[0]
    logits = torch.full((n, 37), -4.0)
    classes = torch.tensor([1, 3, 5, 9])[torch.randint(0, 4, (n,), generator=g)]
    logits[torch.arange(n), classes] = 2.0 + torch.rand(n, generator=g)
    logits[torch.arange(n), 1] += torch.rand(n, generator=g) * 2  # person-likeness
    return logits


def with_all_unions(features, seed: int = 1):
    """``features`` plus random union features for the other entity pairs."""
    first, second = other_pairs(
        features.entity_frame,
        features.entity_labels,
        features.entity_scores,
        len(features.frame_keys),
    )
    g = torch.Generator().manual_seed(seed)
    features.other_pair_subject, features.other_pair_object = first, second
    features.other_union_features = torch.randn(first.shape[0], 64, generator=g)
    return features


def union_of(features, a: int, b: int) -> torch.Tensor:
    """The union feature the features hold for entities a and b (either order)."""
    for s, o, u in zip(
        features.pair_subject, features.pair_object, features.union_features, strict=True
    ):
        if {int(s), int(o)} == {a, b}:
            return u
    for s, o, u in zip(
        features.other_pair_subject,
        features.other_pair_object,
        features.other_union_features,
        strict=True,
    ):
        if {int(s), int(o)} == {a, b}:
            return u
    raise AssertionError(f"no union for {a}, {b}")


@pytest.mark.parametrize("seed", range(8))
def test_repairing_equals_the_authors(seed, monkeypatch):
    features = with_all_unions(make_features([[3, 5, 9], [5, 5], [9, 3, 3, 5], [4]], seed=seed))
    model = RelationModel(small_config(*RELEASE)).eval()
    logits = crafted_logits(features, seed)
    monkeypatch.setattr(model.object_classifier, "forward", lambda f, b=None: logits)
    repaired = model.inference_pairs(features, "sgcls")
    pairs = list(zip(repaired.pair_subject.tolist(), repaired.pair_object.tolist(), strict=True))
    assert pairs == ref_sgcls_pairs(logits, features.entity_frame.tolist())
    assert repaired.pair_frame.tolist() == features.entity_frame[repaired.pair_object].tolist()
    for (s, o), u in zip(pairs, repaired.union_features, strict=True):
        assert torch.equal(u, union_of(features, s, o))
    # the labels the model then uses are the same decision
    encoding = model.encode(repaired, "sgcls")
    assert (encoding.entity_labels[repaired.pair_subject] == PERSON).all()


def test_the_crafted_cases_change_the_pairs(monkeypatch):
    """Across these scenes the classifier picks another person and relabels a duplicate
    person: the given pairs are not the authors'."""
    moved = dropped = 0
    for seed in range(8):
        features = with_all_unions(make_features([[3, 5, 9], [5, 5], [9, 3, 3, 5]], seed=seed))
        logits = crafted_logits(features, seed)
        ref = ref_sgcls_pairs(logits, features.entity_frame.tolist())
        people = {s for s, _ in ref}
        moved += len(people - set(features.pair_subject.tolist()))
        # neither a person nor an object: a duplicate the classifier relabelled person
        dropped += len(set(range(features.entity_frame.shape[0])) - people - {o for _, o in ref})
    assert moved > 0 and dropped > 0


def test_given_pairs_stay_in_training_predcls_and_tr2(monkeypatch):
    features = with_all_unions(make_features([[3, 5], [9]]))
    release = RelationModel(small_config(*RELEASE))
    tr2 = RelationModel(small_config("object_classifier.person=classifier")).eval()
    assert release.train().inference_pairs(features, "sgcls") is features
    assert release.eval().inference_pairs(features, "predcls") is features
    assert tr2.inference_pairs(features, "sgcls") is features


def test_missing_union_features_are_named():
    features = make_features([[3, 5, 9]])
    person = torch.tensor([2])  # an object: its pairs with the others were not extracted
    with pytest.raises(ValueError, match="with_other_pairs"):
        pairs_around(features, person, torch.tensor([1, 3, 5, 9]))


def test_repairing_needs_the_classifiers_person():
    with pytest.raises(ConfigError, match="person=classifier"):
        small_config(
            "object_classifier.person=pair_subject", "object_classifier.sgcls_pairs=classifier"
        )


def test_the_extractor_embeds_every_other_pair():
    extractor = create_extractor(small_config(), random_init=True)
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8, generator=g) for _ in range(2)]
    boxes = torch.tensor([[10.0, 10, 60, 90], [50, 30, 120, 80], [0, 0, 20, 30], [5, 40, 70, 95]])
    labels = torch.tensor([PERSON, 5, 9, 3])
    plain = extractor.extract(images, [boxes, boxes[:2]], [labels, labels[:2]])
    full = extractor.extract(
        images, [boxes, boxes[:2]], [labels, labels[:2]], with_other_pairs=True
    )
    assert torch.equal(plain.union_features, full.union_features)
    assert plain.other_pair_subject is None
    assert full.other_pair_subject.tolist() == [1, 1, 2] and full.other_pair_object.tolist() == [
        2,
        3,
        3,
    ]
    frames = stack_frames([im.float() / 255 for im in images])
    crops = union_boxes(boxes[[1, 1, 2]], boxes[[2, 3, 3]])
    expected = extractor.union(frames, torch.zeros(3, dtype=torch.long), crops)
    assert torch.allclose(full.other_union_features, expected, atol=1e-5)
