"""A notebook, run for its page as `nbdev_test` runs it, through nbdev's own docs processors (`FilterDefaults`:
front matter, a `show_doc` after each exported definition, the `#| hide` / `#| export` cells dropped by reading the
directives, since `nbdev_clean` strips cell tags, links to the API). Ours, in place of nbdev's `exec_show_docs` and
`add_links`: every cell is run (`tst_flags` cells skipped), `show_doc` renders the docments as a table with a source
link, and "X's `name`" names another library's function, never ours. Results are cached in .cache/docs/."""
from __future__ import annotations
import hashlib, importlib, inspect, json, os, re, sys, time
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell
from fastcore.docments import DocmentTbl
from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.doclinks import NbdevLookup
from nbdev.process import Processor
from nbdev.processors import FilterDefaults, add_show_docs, add_links, exec_show_docs, _is_showdoc
from nbdev.showdoc import BasicMarkdownRenderer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CFG = get_config(path=ROOT)
FLAGS = set(CFG.get('tst_flags', 'slow cuda').split())
CACHE = ROOT/'.cache'/'docs'


class NotebookError(Exception): "A cell raised; the message is execnb's traceback, naming the notebook and the cell."


def notebooks() -> list[Path]:
    "Every notebook under nbs/ (not `_`-named, not in `_`/`.` folders), in reading order: index, library, folders."
    nbs = CFG.nbs_path
    found = [p for p in nbs.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(nbs).parts)]
    return sorted(found, key=lambda p: (len(p.relative_to(nbs).parts), p.stem != 'index', p.relative_to(nbs).as_posix()))


class Renderer(BasicMarkdownRenderer):
    "nbdev's `show_doc` with the anchor `_modidx.py` links to, a source link, and the docments as a table."
    def _repr_markdown_(self):
        src, ps = NbdevLookup().code(self.fn), [str(p) for p in self.sig.parameters.values()] if self.sig else []
        ra = self.sig.return_annotation if self.sig else inspect.Signature.empty
        ret = '' if ra is inspect.Signature.empty else f' -> {inspect.formatannotation(ra)}'
        sig = f'{self.nm}({", ".join(ps)}){ret}'
        if len(sig) > 80: sig = f'{self.nm}(\n' + ''.join(f'    {p},\n' for p in ps) + f'){ret}'
        md = f'<div class="showdoc" markdown>\n\n{"#" * self.title_level} {self.nm} {{ #{self.nm.lower()} .api-name }}\n\n'
        if src: md += f'[source]({src}){{ .api-source title="{self.nm} in the repository" }}\n\n'
        md += f'```python\n{sig}\n```\n\n' + (f'*{self.docs}*\n\n' if self.docs else '')
        tbl = DocmentTbl(self.sym)
        for d in tbl.dm.values(): d.update({k: str(v).replace('|', '\\|') for k, v in d.items() if '|' in str(v)})
        return md + tbl._repr_markdown_() + '\n\n</div>'


def _sklearn(n):
    mods = 'sklearn.metrics', 'sklearn.metrics.pairwise', 'sklearn.neighbors', 'sklearn.cluster', 'sklearn.manifold'
    return next((f'https://scikit-learn.org/stable/modules/generated/{m}.{n}.html' for m in mods
                 if hasattr(importlib.import_module(m), n)), None)

def _pml(n, url='https://kevinmusgrave.github.io/pytorch-metric-learning/'):
    return url + 'losses/#' + n.lower() if n.endswith('Loss') else url + 'accuracy_calculation/' if n == 'AccuracyCalculator' else None

OTHER_DOCS = {'scikit-learn': _sklearn, 'sklearn': _sklearn, 'pytorch-metric-learning': _pml, 'PML': _pml}
_re_owner = re.compile(r"([A-Za-z][\w.-]*)['\u2019]s\s+(?:own\s+)?\[?$")


class Lookup(NbdevLookup):
    "nbdev's links to the API, except \"X's `name`\" for another library X: X's docs (`OTHER_DOCS`) or plain text."
    def _link_sym(self, m):
        owner = _re_owner.search(m.string[max(0, m.start() - 40):m.start()])
        if not owner or owner.group(1) in ('softsil_nb', 'fastai', 'fastcore', 'nbdev'): return super()._link_sym(m)
        url = OTHER_DOCS.get(owner.group(1), lambda n: None)(m.group(1).split('.')[-1])
        return f'[{m.group(0)}]({url})' if url else m.group(0)


def links(cell):
    "nbdev's `add_links`, with `Lookup`."
    nl = Lookup()
    if cell.cell_type == 'markdown': cell.source = nl.linkify(cell.source)
    for o in cell.get('outputs', []):
        if 'text/markdown' in o.get('data', {}): o.data['text/markdown'] = [nl.link_line(s) for s in o.data['text/markdown']]


def _skip(cell) -> bool:
    "`nbdev_test`'s rule: run code cells, except `nbdev_export()`, `eval: false` and cells flagged with `tst_flags`."
    d = cell.get('directives_') or {}
    if _is_showdoc(cell): cell.source = re.sub(r'^show_doc\((.+)\)\s*$', r'show_doc(\1, renderer=_Renderer)', cell.source, flags=re.M)
    return (cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source
            or d.get('eval:', [''])[0].lower() == 'false' or bool(FLAGS & d.keys()))


class run_cells(Processor):
    "Run the notebook in its folder, as `nbdev_test` does; warnings name their category, not a file of this machine."
    def begin(self):
        os.environ.setdefault('IN_TEST', '1')
        k, path = CaptureShell(self.nb.path_), Path(self.nb.path_)
        k.user_ns['_Renderer'] = Renderer
        k.run_cell('from nbdev.showdoc import show_doc\nimport warnings\n'
                   'warnings.formatwarning = lambda m, c, *a, **kw: f"{c.__name__}: {m}\\n"')
        try:
            with working_directory(path.parent): k.run_all(self.nb, exc_stop=True, preproc=_skip)
        except BaseException as e: raise NotebookError(k.prettytb(fname=path)) from e


class DocsProcs(FilterDefaults):
    "nbdev's docs processors, with `run_cells` right after `add_show_docs` and `links` for `add_links`."
    def base_procs(self):
        procs = [links if p is add_links else p for p in super().base_procs() if p is not exec_show_docs]
        return procs[:procs.index(add_show_docs) + 1] + [run_cells] + procs[procs.index(add_show_docs) + 1:]


def _nbformat(nb) -> dict:
    "The processed notebook as nbformat 4: directives out of the code, `echo: false` code hidden, the description shown."
    cells, fm = [], getattr(nb, 'frontmatter_', {}) or {}
    for i, c in enumerate(nb.cells):
        src, meta = c.get('source', ''), {}
        if c.cell_type == 'code':
            if re.search(r'^#\|\s*echo:\s*false', src, re.M): meta['transient'] = {'remove_source': True}
            src = re.sub(r'^#\|.*(\n|$)', '', src, flags=re.M)
        cell = dict(id=f'c{i}', cell_type=c.cell_type, source=src, metadata=meta)
        if c.cell_type == 'code': cell.update(outputs=[dict(o) for o in c.get('outputs', [])], execution_count=None)
        if c.get('attachments'): cell['attachments'] = dict(c.attachments)
        cells.append(cell)
        if c.cell_type == 'raw' and fm.get('description'):
            cells.append(dict(id='desc', cell_type='markdown', source=f'{fm["description"]}\n{{ .nb-description }}', metadata={}))
    meta = {'language_info': {'name': 'python'}, 'title': fm.get('title')}
    return dict(nbformat=4, nbformat_minor=5, metadata=meta, cells=cells)


def cache_key(nb:Path) -> str:
    "Changes with the notebook, the library, this file, the settings links come from, the flags and Python."
    h = hashlib.sha256(repr([CFG.get(k) for k in ('git_url', 'branch', 'doc_host', 'doc_baseurl')] + sorted(FLAGS)
                            + [sys.version]).encode())
    for p in [nb, Path(__file__), *sorted((ROOT/CFG.lib_path.name).rglob('*.py'))]: h.update(p.read_bytes() + b'\0')
    return h.hexdigest()[:24]


def executed(nb:Path, read:bool=True) -> tuple[dict, bool]:
    "The processed, executed notebook `nb` as nbformat (from the cache when there and `read`): (notebook, cached)."
    f = CACHE/f'{cache_key(nb)}.json'
    if read and f.exists(): return json.loads(f.read_text()), True
    p = DocsProcs().nb_proc(read_nb(nb)); p.process()
    res = _nbformat(p.nb)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f'.{f.name}.{os.getpid()}'); tmp.write_text(json.dumps(res)); tmp.replace(f)
    return res, False


def page_notebook(nb:str) -> dict:
    "For the docs build, in a worker process: one notebook, executed or from the cache; never raises."
    import multiprocessing as mp
    os.environ.setdefault('MPLBACKEND', 'Agg')
    mp.set_start_method('fork', force=True)       # as under nbdev_test: DataLoader workers inherit the notebook's objects
    try: return dict(zip(('nb', 'cached'), executed(Path(nb))), error=None)
    except NotebookError as e: return {'nb': None, 'error': str(e)}
    except Exception as e: return {'nb': None, 'error': f'{type(e).__name__}: {e}'}


def run_notebook(path) -> tuple[bool, float]:
    "Run one notebook (for tests/test_notebooks.py), filling the cache the docs build reads: (ok, seconds)."
    t0 = time.time()
    try: executed(Path(path).resolve(), read=False)
    except NotebookError as e: sys.stderr.write(str(e) + '\n'); return False, time.time() - t0
    return True, time.time() - t0
