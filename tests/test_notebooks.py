"One test per notebook: run it with nbdev's test runner, skipping cells flagged `slow` or `cuda`."
from pathlib import Path
import pytest
from nbdev.test import test_nb as run_notebook

NBS = Path(__file__).resolve().parent.parent/'nbs'
notebooks = sorted(p for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_'))

def test_found_notebooks(): assert len(notebooks) >= 2, f'no notebooks found under {NBS}'

@pytest.mark.parametrize('nb', notebooks, ids=[str(p.relative_to(NBS)) for p in notebooks])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, secs = run_notebook(nb, skip_flags=['slow', 'cuda'], basepath=NBS.parent)
    assert ok, f'{nb.name} failed when run by nbdev'
