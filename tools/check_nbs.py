"Fail with a clear message when a notebook is not clean or the library is out of sync with the notebooks."
import hashlib, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
bin_ = Path(sys.executable).parent

def snapshot(*dirs):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for d in dirs for p in sorted((root/d).rglob('*'))
            if p.is_file() and p.suffix in ('.ipynb', '.py') and '.ipynb_checkpoints' not in p.parts and '__pycache__' not in p.parts}

def changed(before, after): return sorted(str(p.relative_to(root)) for p in set(before) | set(after) if before.get(p) != after.get(p))

def run(cmd):
    r = subprocess.run([str(bin_/cmd)], cwd=root, capture_output=True, text=True)
    if r.returncode: sys.exit(f'{cmd} failed:\n{r.stdout}\n{r.stderr}')

b = snapshot('nbs'); run('nbdev_clean'); a = snapshot('nbs')
if (c := changed(b, a)):
    sys.exit('Notebooks were not clean (nbdev_clean changed them; they are cleaned now, commit the result):\n  ' + '\n  '.join(c))
b = snapshot('softsil_nb'); run('nbdev_export'); a = snapshot('softsil_nb')
if (c := changed(b, a)):
    sys.exit('The library was out of sync with the notebooks (nbdev_export changed it; commit the result):\n  ' + '\n  '.join(c))
print('notebooks clean, library in sync')
