"""Process and execute one notebook for the docs, as `nbdev_docs` would process it and `nbdev_test` would run it.

nbdev's own processors do the work (front matter, `show_doc` cells after each exported definition, the `#| hide`
and `#| export` cells dropped by reading the directives -- `nbdev_clean` strips cell tags, so an engine reading tags
would keep them -- and links to the API); in between, every code cell is run by execnb's `CaptureShell` in this
process, skipping cells flagged `slow` or `cuda` (settings.ini `tst_flags`) exactly as `nbdev_test` does.
"""
from __future__ import annotations
import os, re, time
from pathlib import Path
from nbdev.doclinks import NbdevLookup

SKIP_FLAGS = ('slow', 'cuda')


class NotebookError(Exception):
    "A cell raised while the notebook ran; the message is execnb's traceback, naming the notebook and the cell."


def _skip_reason(cell, flags) -> str | None:
    "Why `nbdev_test` would not run `cell` (None: it runs)."
    if cell.cell_type != 'code': return 'not code'
    if 'nbdev_export' + '(' in cell.source: return 'nbdev_export'
    d = getattr(cell, 'directives_', {}) or {}
    if d.get('eval:', [''])[0].lower() == 'false': return 'eval: false'
    hit = sorted(set(flags) & d.keys())
    return ', '.join(hit) if hit else None


# "scikit-learn's `silhouette_score`" names that library's function, not ours of the same name: such a name links to
# that library's docs (when we know where they are) or stays plain text; nbdev's add_links would send it to ours.
_re_owner = re.compile(r"([A-Za-z][\w.-]*)(?:'s|\u2019s)\s+(?:own\s+)?(?:\[)?$")
OTHER_DOCS = {
    'scikit-learn': lambda n: next((f'https://scikit-learn.org/stable/modules/generated/{m}.{n}.html'
                                    for m in ('sklearn.metrics', 'sklearn.metrics.pairwise', 'sklearn.neighbors',
                                              'sklearn.cluster', 'sklearn.manifold') if _has_attr(m, n)), None),
    'pytorch-metric-learning': lambda n: ('https://kevinmusgrave.github.io/pytorch-metric-learning/losses/#'
                                          + n.lower()) if n.endswith('Loss') else
                                         'https://kevinmusgrave.github.io/pytorch-metric-learning/accuracy_calculation/'
                                         if n == 'AccuracyCalculator' else None}
OTHER_DOCS['sklearn'] = OTHER_DOCS['scikit-learn']; OTHER_DOCS['PML'] = OTHER_DOCS['pytorch-metric-learning']


def _has_attr(mod:str, name:str) -> bool:
    import importlib
    try: return hasattr(importlib.import_module(mod), name)
    except ImportError: return False


class Lookup(NbdevLookup):
    "nbdev's links to the API, except that a name owned by another library (`X's `name``) never links to ours."
    def _link_sym(self, m):
        owner = _re_owner.search(m.string[max(0, m.start() - 40):m.start()])
        lib = owner.group(1) if owner else None
        if lib is None or lib in ('softsil_nb', 'fastai', 'fastcore', 'nbdev'): return super()._link_sym(m)
        url = OTHER_DOCS.get(lib, lambda n: None)(m.group(1).split('.')[-1])
        return f'[{m.group(0)}]({url})' if url else m.group(0)


def add_links(cell):
    "nbdev's `add_links` processor with `Lookup`."
    nl = Lookup()
    if cell.cell_type == 'markdown': cell.source = nl.linkify(cell.source)
    for o in cell.get('outputs', []):
        if hasattr(o, 'data') and hasattr(o['data'], 'text/markdown'):
            o.data['text/markdown'] = [nl.link_line(s) for s in o.data['text/markdown']]


def process_notebook(path, skip_flags=SKIP_FLAGS, timeout:int|None=None, execute:bool=True):
    "Read, execute and process the notebook at `path`; returns (execnb notebook, seconds spent running cells)."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor, Processor
    from nbdev.frontmatter import FrontmatterProc
    from nbdev import processors as P
    from . import showdoc
    showdoc.install()
    path = Path(path).resolve()
    state = {'secs': 0.0}

    class run_cells(Processor):
        "Run every code cell that `nbdev_test` runs; mark the others."
        def begin(self):
            if not execute: return
            start = time.time()
            os.environ.setdefault('IN_TEST', '1')     # as nbdev_test: notebooks may shorten work under a test runner
            k = CaptureShell(path, timeout=timeout)
            k.run_cell('from nbdev.showdoc import show_doc')

            def skip(cell):
                why = _skip_reason(cell, skip_flags)
                if why not in (None, 'not code', 'nbdev_export'): cell.skipped_ = why
                return why is not None
            try:
                with working_directory(path.parent):
                    k.run_all(self.nb, exc_stop=True, preproc=skip)
            except BaseException as e:
                raise NotebookError(k.prettytb(fname=path)) from e
            finally:
                state['secs'] = time.time() - start

    procs = [FrontmatterProc, P.populate_language, P.add_show_docs, run_cells,
             P.strip_ansi, P.hide_line, P.filter_stream_, P.rm_header_dash, P.clean_show_doc,
             P.rm_export, P.clean_magics, P.hide_, add_links, P.add_fold, P.mv_exports, P.strip_hidden_metadata]
    nb = NBProcessor(path, procs=procs, process=True).nb
    return nb, state['secs']


def _src(s): return ''.join(s) if isinstance(s, list) else (s or '')


def to_nbformat(nb) -> dict:
    "The processed execnb notebook as a plain nbformat-4 dict; what the renderer needs goes in `metadata.docs`."
    from nbdev.processors import _is_showdoc
    cells = []
    for i, c in enumerate(nb.cells):
        src = _src(c.get('source'))
        if c.cell_type == 'raw' and src.lstrip().startswith('---'): continue      # Quarto front matter: in metadata
        docs = {}
        if getattr(c, 'skipped_', None): docs['skipped'] = c.skipped_
        if c.cell_type == 'code' and _is_showdoc(c): docs['showdoc'] = True
        cell = {'cell_type': c.cell_type, 'id': c.get('id') or f'cell-{i}', 'metadata': {'docs': docs}, 'source': src}
        if c.cell_type == 'code':
            cell['outputs'] = [dict(o) for o in c.get('outputs', [])]
            cell['execution_count'] = None
        if c.get('attachments'): cell['attachments'] = dict(c.attachments)
        cells.append(cell)
    fm = dict(getattr(nb, 'frontmatter_', {}) or {})
    meta = dict(nb.get('metadata', {}))
    meta['docs'] = {'title': fm.get('title'), 'description': fm.get('description')}
    return {'nbformat': 4, 'nbformat_minor': 5, 'metadata': meta, 'cells': cells}
