"""The engine contract (tr2_core/stream/engine_contract.py): the real engine and every
stand-in engine of the tests implement it, and the node refuses an engine that does not."""

from __future__ import annotations

import numpy as np
import pytest
from engine_fixtures import EmptyEngine, RecordingEngine, frames, tiny_engine
from ros_fixtures import FakeEngine

from tr2_core.errors import Tr2Error
from tr2_core.stream.engine_contract import OFFLINE_RUN_CAUSALLY, ONLINE, SceneGraphEngine
from tr2_ros.node import checked_engine, model_protocol


def test_the_real_engine_implements_the_contract():
    engine = tiny_engine(window=3)
    assert isinstance(engine, SceneGraphEngine)
    assert engine.protocol in (ONLINE, OFFLINE_RUN_CAUSALLY)
    assert engine.model_name == "tr2-small" and engine.window == 3
    result = engine.process(frames(1)[0], 1_000)
    assert int(result.stamp_ns) == 1_000 and engine.stats.frames == 1
    engine.tune(score_threshold=0.5)
    assert engine.score_threshold == 0.5
    engine.close()
    assert len(engine.frames) == 0  # the window is dropped
    assert model_protocol(engine).endswith("checkpoint model config 'tr2-small'")


@pytest.mark.parametrize(
    "make",
    [FakeEngine, EmptyEngine, lambda: RecordingEngine(EmptyEngine())],
    ids=["FakeEngine", "EmptyEngine", "RecordingEngine"],
)
def test_the_stand_in_engines_implement_the_contract(make):
    engine = make()
    assert isinstance(engine, SceneGraphEngine)
    assert checked_engine(engine) is engine
    image = np.zeros((6, 8, 3), np.uint8)
    assert int(engine.process(image, 7).stamp_ns) == 7
    engine.tune(max_gap_s=1.0)
    engine.close()


def test_an_engine_without_the_contract_is_refused_in_one_line():
    class ProcessOnly:
        def process(self, image, stamp_ns):
            raise AssertionError("never called")

    assert not isinstance(ProcessOnly(), SceneGraphEngine)
    with pytest.raises(Tr2Error, match=r"ProcessOnly without \['protocol', 'model_name'"):
        checked_engine(ProcessOnly())
