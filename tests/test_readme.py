"The README's usage examples run as written."
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent/'README.md'

def test_readme_examples_run():
    blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
    assert len(blocks) == 2, 'the README should hold the plain PyTorch and the fastai example'
    ns = {}
    exec(compile(blocks[0], 'README:pytorch', 'exec'), ns)
    import torch, torch.nn.functional as F
    with torch.no_grad():                                            # on all the data: CE (2.3) + Sil (about 1) at the start
        X, y = torch.tensor(ns['X']).float() / 16, torch.tensor(ns['y'])
        z = ns['model'](X)
        assert F.cross_entropy(ns['head'](z), y) + ns['sil'](z, y) < 1.0
    ns = {}
    exec(compile(blocks[1], 'README:fastai', 'exec'), ns)
    probs, targs = ns['learn'].get_preds()
    assert (probs.argmax(1) == targs).float().mean() > 0.5

def test_index_example_runs_when_copied():
    "The index page's example, exactly as shown (its imports visible), gives the same loss twice (it is seeded)."
    import json, torch
    nb = json.loads((README.parent/'nbs'/'index.ipynb').read_text())
    code = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code' and not ''.join(c['source']).startswith('#|')]
    assert code, 'the index page shows no code'
    vals = []
    for _ in range(2):
        ns = {}
        *body, last = code[0].strip().splitlines()
        exec('\n'.join(body), ns)                                        # a fresh namespace: nothing imported beforehand
        vals.append(float(eval(last, ns)))
        torch.manual_seed(123)                                           # whatever ran before, the example reseeds
    assert vals[0] == vals[1] and 0 < vals[0] < 2
