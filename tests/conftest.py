import os
import pytest

def pytest_addoption(parser):
    parser.addoption('--cuda', action='store_true', help='also run the tests marked cuda (they need a CUDA GPU)')

def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU; deselected unless --cuda (like the notebooks\' cuda flag)')
    # `make test` runs 2 pytest workers on 2 cores: one thread each (two threads each made small fits 10-20x slower).
    if os.environ.get('PYTEST_XDIST_WORKER'):
        import torch
        torch.set_num_threads(1)

@pytest.fixture(scope='session')
def fetched():
    """`fetched(*names)` fetches registry datasets into the cache (idempotent; a file lock makes parallel workers safe).
    Under CI=true a failed fetch fails the test; elsewhere it skips with the command that fetches the data."""
    from softsil_nb.data import fetch, fetch_command
    def need(*names):
        for n in names:
            try: fetch(n)
            except Exception as e:
                if os.environ.get('CI') == 'true': pytest.fail(f'could not fetch dataset {n!r}: {e}')
                pytest.skip(f'dataset {n!r} could not be fetched ({e}); fetch it with: {fetch_command(n)}')
    return need

def pytest_collection_modifyitems(config, items):
    "Deselect (not skip) the cuda tests unless --cuda: `make test` runs on machines without a GPU, CI among them."
    if config.getoption('--cuda'): return
    keep = [i for i in items if 'cuda' not in i.keywords]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if 'cuda' in i.keywords]); items[:] = keep
