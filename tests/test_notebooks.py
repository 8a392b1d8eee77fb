"""One test per notebook: run it as nbdev's test runner does (nbdev's processing; cells flagged `slow` or `cuda` skipped).
The executed notebook is kept in the docs cache (.cache/docs), so the docs build that follows does not run it again."""
import sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
from docs.notebooks import run_notebook      # noqa: E402

NBS = ROOT/'nbs'
notebooks = sorted(p for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_'))

def test_found_notebooks(): assert len(notebooks) >= 2, f'no notebooks found under {NBS}'

@pytest.mark.parametrize('nb', notebooks, ids=[str(p.relative_to(NBS)) for p in notebooks])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    ok, secs = run_notebook(nb)
    assert ok, f'{nb.name} failed when run by nbdev'
