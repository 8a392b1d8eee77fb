"The README's usage examples run as written."
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent/'README.md'

def test_readme_examples_run():
    blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
    assert len(blocks) == 2, 'the README should hold the plain PyTorch and the fastai example'
    ns = {}
    exec(compile(blocks[0], 'README:pytorch', 'exec'), ns)
    assert ns['loss'].item() < 1.5                                   # CE (2.3) + Sil (about 1) at the start
    ns = {}
    exec(compile(blocks[1], 'README:fastai', 'exec'), ns)
    probs, targs = ns['learn'].get_preds()
    assert (probs.argmax(1) == targs).float().mean() > 0.5
