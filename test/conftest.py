"""Suite-wide settings: caches go to a temporary folder, never to ~/.cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_tr2_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TR2_CACHE_DIR", str(tmp_path_factory.mktemp("tr2-cache")))
    mp.setenv("MPLBACKEND", "Agg")
    yield
    mp.undo()
