from dataclasses import dataclass, field
from typing import Literal

import pytest

from tr2_core.config import apply_overrides, from_dict, load_config, to_dict
from tr2_core.errors import ConfigError
from tr2_core.models.model_config import load_model_config
from tr2_core.train.recipe import load_train_config


@dataclass
class Inner:
    layers: int = 3
    dropout: float = 0.1


@dataclass
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None


def test_nested_and_types():
    cfg = from_dict(Outer, {"inner": {"layers": 1, "dropout": 0}, "sizes": [4], "mode": "b"})
    assert cfg.inner.layers == 1 and cfg.inner.dropout == 0.0 and cfg.sizes == (4,)
    assert to_dict(cfg)["sizes"] == [4]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"innr": {}}, "unknown key"),
        ({"inner": {"layers": "3"}}, "config.inner.layers: expected an integer"),
        ({"inner": {"layers": True}}, "expected an integer"),
        ({"mode": "c"}, "not one of"),
        ({"inner": 3}, "expected a mapping"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_overrides_and_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  layers: 2\n")
    cfg = load_config(Outer, path, "models", ["inner.dropout=0.5", "path=/x"])
    assert cfg.inner.layers == 2 and cfg.inner.dropout == 0.5 and cfg.path == "/x"
    assert apply_overrides({}, ["a.b=1"]) == {"a": {"b": 1}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml", "models")


def test_base_configs_merge_key_by_key(tmp_path):
    (tmp_path / "parent.yaml").write_text("name: p\ninner:\n  layers: 5\n  dropout: 0.3\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ninner:\n  layers: 1\n")
    cfg = load_config(Outer, tmp_path / "child.yaml", "models", ["name=c"])
    assert (cfg.name, cfg.inner.layers, cfg.inner.dropout) == ("c", 1, 0.3)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(Outer, tmp_path / "loop.yaml", "models")
    (tmp_path / "bad.yaml").write_text("base: parent.yaml\ninner:\n  layerz: 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(Outer, tmp_path / "bad.yaml", "models")


def test_exponent_floats_without_a_dot_are_numbers():
    cfg = from_dict(Inner, apply_overrides({}, ["dropout=1e-4"]))
    assert cfg.dropout == 1e-4
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict(Inner, {"dropout": "high"})


def test_named_configs_found_in_an_installed_copy(tmp_path):
    """A wheel-style install (no checkout around it) still finds the named
    configs: they are package data of tr2_core, not files beside the source."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"  # a copy, so the build writes nothing into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    for package in ("tr2_core", "tr2_ros"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(repo / package, source / package, ignore=skip)
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    pip += ["--no-build-isolation", "--target", str(site), str(source)]
    subprocess.run(pip, check=True, capture_output=True, cwd=tmp_path, timeout=300)
    shutil.rmtree(source)

    script = (
        "import tr2_core\n"
        "from tr2_core.models.model_config import load_model_config\n"
        "from tr2_core.train.recipe import load_train_config\n"
        "print(tr2_core.__file__)\n"
        "print(load_model_config('tr2-small').d_model, load_model_config('sttran-like').d_model)\n"
        "print(load_train_config('small').epochs)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed copy, not the checkout
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, dims, epochs = done.stdout.splitlines()
    assert Path(where).is_relative_to(site)
    assert dims.split() == [str(load_model_config("tr2-small").d_model),
                            str(load_model_config("sttran-like").d_model)]  # fmt: skip
    assert int(epochs) == load_train_config("small").epochs
