"""Suite-wide settings: caches go to a temporary folder, never to ~/.cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_tr2_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TR2_CACHE_DIR", str(tmp_path_factory.mktemp("tr2-cache")))
    mp.setenv("MPLBACKEND", "Agg")
    yield
    mp.undo()


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: with small matrices on a loaded 2-core machine
    the thread pool only adds waits (the fusion test took minutes with the default pool,
    seconds with one thread)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
