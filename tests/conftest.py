import os
import pytest

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: long tests, skipped unless --runslow')
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
