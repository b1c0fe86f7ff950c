"""Hostile checkpoints: every field checked before anything is built or written, one
line per refusal, and a refused ``--resume`` leaves the run folder as it was.

Each test here failed before the checkpoint schema (``tr2_core.checkpoint_schema``): a
traceback, a multi-line message quoting torch's advice, an attempted huge allocation,
or a run folder changed by a resume that was then refused."""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path

import pytest
import torch

from tr2_core.cli import main as tr2_main
from tr2_core.errors import WeightsError
from tr2_core.models import create_relation_model, load_model_config
from tr2_core.outputs import MARKER
from tr2_core.run import load_checkpoint
from tr2_core.run_spec import RunSpec
from tr2_core.train.checkpoint import (
    RUN_FOLDER_KIND,
    append_log,
    checkpoint_state,
    run_config_dict,
)
from tr2_core.train.loop import Optimisation, train
from tr2_core.train.recipe import load_train_config


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TR2_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def good_checkpoint() -> dict:
    """A checkpoint of the small model after one (untrained) epoch, as the loop writes it."""
    torch.manual_seed(0)
    model_cfg = load_model_config("tr2-small")
    train_cfg = load_train_config("small", ("epochs=2",))
    run = RunSpec(data="/nonexistent/ag", model="tr2-small", random_init=True)
    relation = create_relation_model(model_cfg)
    opt = Optimisation.create(relation, train_cfg, torch.device("cpu"))
    return checkpoint_state(
        relation, opt.state(), epoch=1, best=0.25,
        config=run_config_dict(run, model_cfg, train_cfg), extractor_fingerprint="ab" * 16,
        random_init=True, log_record={"epoch": 1, "loss": 1.0},
    )  # fmt: skip


def _save(ckpt: dict, path: Path) -> Path:
    torch.save(ckpt, path)
    return path


def test_good_checkpoint_loads_and_round_trips(good_checkpoint, tmp_path):
    loaded = load_checkpoint(_save(good_checkpoint, tmp_path / "last.pt"))
    assert loaded["epoch"] == 1 and loaded["config"] == good_checkpoint["config"]
    for name, tensor in good_checkpoint["model"].items():
        assert torch.equal(loaded["model"][name], tensor)


def _set(dotted: str, value):
    """A mutation setting ``ckpt[a][b]...`` (dotted path) to ``value``."""

    def apply(ckpt: dict) -> None:
        *parents, last = dotted.split(".")
        node = ckpt
        for key in parents:
            node = node[key]
        node[last] = value

    return apply


def _bigger_head(ckpt: dict) -> None:
    name = next(k for k in ckpt["model"] if k.endswith("weight"))
    ckpt["model"][name] = torch.zeros(ckpt["model"][name].shape[0] + 1, 3)


# mutation -> (field named in the message, what it says)
_BAD_FIELDS = {
    "config stored as a string": (_set("config", "tr2-small"), "config", "not a dict"),
    "model section is a list": (_set("config.model", [1]), "config.model", "not a dict"),
    "model dimension of 1e9": (
        _set("config.model.fusion.ffn_dim", 10**9),
        "config.model.fusion.ffn_dim",
        "not in",
    ),
    "a billion-parameter relation model": (
        lambda c: c["config"]["model"]["fusion"].update(temporal_layers=256, ffn_dim=2**18),
        "config.model",
        "parameters",
    ),
    "a huge CLIP tower": (
        _set("config.model.clip.overrides.vision_cfg.layers", 10**6),
        "config.model.clip.overrides.vision_cfg.layers",
        "not in",
    ),
    "a million anchors": (
        _set("config.model.detector.anchor_sizes", [32] * 10**6),
        "config.model.detector.anchor_sizes",
        "not 1 to 32 numbers",
    ),
    "dimension of the wrong type": (
        _set("config.model.fusion.heads", "4"),
        "config.model.fusion.heads",
        "expected an integer",
    ),
    "epoch is a string": (_set("epoch", "three"), "epoch", "not an integer"),
    "epoch is a float": (_set("epoch", 1.5), "epoch", "not an integer"),
    "epoch is negative": (_set("epoch", -1), "epoch", "not in"),
    "epoch is a bool": (_set("epoch", True), "epoch", "not an integer"),
    "best metric is NaN": (_set("best_metric", math.nan), "best_metric", "not a number"),
    "random_init is a string": (_set("random_init", "no"), "random_init", "true/false"),
    "fingerprint is a number": (_set("extractor_fingerprint", 7), "extractor_fingerprint", "hex"),
    "log record of another epoch": (
        _set("log_record", json.dumps({"epoch": 9})),
        "log_record",
        "epoch 1",
    ),
    "log record is garbage": (_set("log_record", "{not json"), "log_record", "epoch 1"),
    "seed is a float": (_set("config.train.seed", 0.5), "config.train.seed", "integer"),
    "weights do not fit the config": (_bigger_head, "model", "config.model gives"),
    "weights are a list": (_set("model", [1, 2]), "model", "not a state dict"),
    "rng python state cut": (_set("rng.python", [3, torch.zeros(5), None]), "rng.python", "625"),
    "rng numpy position": (
        lambda c: c["rng"].__setitem__("numpy", [*c["rng"]["numpy"][:2], 10**6, 0, 0.0]),
        "rng.numpy",
        "out of range",
    ),
    "optimizer is a string": (_set("optimizer", "adam"), "optimizer", "not a state dict"),
}


@pytest.mark.parametrize("case", list(_BAD_FIELDS))
def test_bad_fields_are_refused_in_one_line(good_checkpoint, tmp_path, case):
    mutate, field, reason = _BAD_FIELDS[case]
    ckpt = copy.deepcopy(good_checkpoint)
    mutate(ckpt)
    path = _save(ckpt, tmp_path / "last.pt")
    t = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert time.perf_counter() - t < 10  # refused before any big allocation
    assert message.startswith(f"{path}: ") and field in message and reason in message, message
    assert "\n" not in message and len(message) < 400


def test_code_carrying_checkpoint_refused_in_one_line_without_unsafe_advice(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = _save({"model": Payload(), "config": {}, "epoch": 1}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message, message
    assert "refused" in message and "system" in message and str(path) in message


def test_code_carrying_weight_files_refused_in_one_line(tmp_path):
    """Detector / relation weight files: the same one line (before: torch's six-line
    advice to re-run with weights_only=False)."""
    from tr2_core.models.entities import read_state_dict

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = _save({"state_dict": Payload()}, tmp_path / "detector.pth")
    with pytest.raises(WeightsError) as info:
        read_state_dict(path, "detector")
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message, message
    assert message.startswith(f"detector weights {path}: refused: it needs the Python object")


def test_truncated_checkpoint_refused_in_one_line(good_checkpoint, tmp_path):
    path = _save(good_checkpoint, tmp_path / "last.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 9 // 10])
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message and len(message) < 400


# --------------------------------------------------------------------------- resume
def _run_folder(tmp_path: Path, good: dict) -> Path:
    """A run folder after one epoch: best.pt, last.pt, config.json, metrics.jsonl."""
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text(RUN_FOLDER_KIND)
    _save(good, out / "best.pt")
    _save(good, out / "last.pt")
    (out / "config.json").write_text(json.dumps(good["config"], indent=1))
    append_log(out / "metrics.jsonl", json.loads(good["log_record"]))
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _other_lr(ckpt: dict) -> None:
    ckpt["config"]["train"]["lr"] = 0.5  # another recipe ...
    ckpt["extractor_fingerprint"] = "0" * 32  # ... and frozen parts that do not fit


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_set("epoch", -1), r"last.pt: epoch: -1 is not in"),
        (_set("epoch", "2"), r"last.pt: epoch: '2' is not an integer"),
        (_other_lr, r"last.pt: the frozen extractor rebuilt"),
    ],
    ids=["negative epoch", "epoch is a string", "frozen parts do not fit"],
)
def test_refused_resume_changes_nothing(good_checkpoint, tmp_path, mutate, match, capsys):
    out = _run_folder(tmp_path, good_checkpoint)
    last = copy.deepcopy(good_checkpoint)
    mutate(last)
    _save(last, out / "last.pt")
    before = _snapshot(out)
    with pytest.raises(WeightsError, match=match) as info:
        train(out, resume=True, device="cpu", progress=False)
    assert "\n" not in str(info.value)
    assert _snapshot(out) == before  # config.json still describes best.pt's run
    assert tr2_main(["train", "--out", str(out), "--resume", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "last.pt" in err
    assert _snapshot(out) == before


# --------------------------------------------------------------------------- tr2 test
def test_tr2_test_refuses_a_bad_checkpoint_before_writing(good_checkpoint, tmp_path, capsys):
    ckpt = copy.deepcopy(good_checkpoint)
    ckpt["epoch"] = "three"
    path = _save(ckpt, tmp_path / "best.pt")
    out = tmp_path / "test-out"
    argv = ["test", "--checkpoint", str(path), "--out", str(out), "--device", "cpu"]
    assert tr2_main(argv) == 2
    err = capsys.readouterr().err
    assert "best.pt: epoch: 'three' is not an integer" in err and "Traceback" not in err
    assert not out.exists()


def test_inference_overrides_are_bounded_as_the_checkpoint_is(good_checkpoint, tmp_path):
    """Before: detector.detections_per_image=1000000000 was accepted (an allocation later)."""
    from tr2_core.errors import ConfigError
    from tr2_core.run import load_trained

    path = _save(good_checkpoint, tmp_path / "best.pt")
    with pytest.raises(ConfigError, match=r"detections_per_image must be in \[0, 10000\]"):
        load_trained(
            path, announce=False, model_overrides=["detector.detections_per_image=1000000000"]
        )
