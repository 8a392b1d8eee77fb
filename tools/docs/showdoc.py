"""`show_doc` output for the site: heading (with the anchor nbdev's `_modidx` links to), a source link, the signature,
the docstring and a table of the parameters with their docments.

autodoc and mkdocstrings ignore docments (our parameters are documented as comments), and nbdev's own renderer adds
a Pandoc-style source link (`{target=...}`) that only Quarto understands. The docs build swaps in `TableRenderer`
(in its own process only, never in the library): every documented symbol gets a parameter table, and a source link
to its line in the repository (settings.ini `git_url` and `branch`, through nbdev's `NbdevLookup.code`).
"""
from __future__ import annotations
import inspect, textwrap
from nbdev.showdoc import BasicMarkdownRenderer
from nbdev.doclinks import NbdevLookup, _lineno
from fastcore.docments import docments

_empty = inspect.Parameter.empty


def _anno(a) -> str:
    if a is _empty or a is None: return ''
    if isinstance(a, str): return a
    return inspect.formatannotation(a)


def _cell(s) -> str:
    "Text for a markdown table cell: one line, pipes escaped."
    return ' '.join(str(s).split()).replace('|', '\\|')


def _params(sym):
    "[(name, kind, annotation, default, details)] of `sym`'s signature, plus ('return', ...) when documented."
    try: sig = inspect.signature(sym, eval_str=False)
    except (TypeError, ValueError): return []
    try: dm = docments(sym, full=True)
    except Exception: dm = {}
    rows = []
    for name, p in sig.parameters.items():
        if name == 'self': continue
        d = dm.get(name, {}) if isinstance(dm.get(name), dict) else {}
        rows.append((name, p.kind, _anno(p.annotation), p.default, d.get('docment') or ''))
    ret = dm.get('return') if isinstance(dm.get('return'), dict) else {}
    ranno = sig.return_annotation
    if ret.get('docment') or ranno is not _empty:
        rows.append(('**Returns**', None, _anno(ranno), _empty, ret.get('docment') or ''))
    return rows


def _signature(name, rows, width=80) -> str:
    parts = []
    for pname, kind, anno, default, _ in rows:
        if kind is None: continue
        star = '*' if kind == inspect.Parameter.VAR_POSITIONAL else '**' if kind == inspect.Parameter.VAR_KEYWORD else ''
        s = star + pname + (f':{anno}' if anno else '') + ('' if default is _empty else f'={default!r}')
        parts.append(s)
    ret = next((r for r in rows if r[1] is None), None)
    tail = f' -> {ret[2]}' if ret and ret[2] else ''
    one = f'{name}({", ".join(parts)}){tail}'
    if len(one) <= width or not parts: return one
    return f'{name}(\n' + ''.join(f'    {p},\n' for p in parts) + f'){tail}'


def source_link(name:str) -> str | None:
    "URL of the line defining `name` (`f`, `Class.method`) in the repository (settings.ini `git_url`, `branch`)."
    res = NbdevLookup()[name]
    if not isinstance(res, tuple): return None
    line = _lineno(name, res[1])       # in the exported module (in a notebook, `inspect` would find the cell)
    return f'{res[2]}#L{line}' if line else res[2]


class TableRenderer(BasicMarkdownRenderer):
    "Markdown for `show_doc`: heading, signature, docstring, then a table of parameters."
    def _repr_markdown_(self):
        h = '#' * self.title_level
        md = f'{h} {self.nm} {{ #{self.nm.lower()} .api-name }}\n\n'
        src = source_link(self.nm)
        if src: md += f'[source]({src}){{ .api-source title="{self.nm} in the repository" }}\n\n'
        rows = _params(self.sym)
        md += '```python\n' + _signature(self.nm, rows) + '\n```\n\n'
        if self.docs: md += f'*{self.docs.strip()}*\n\n'
        shown = [r for r in rows]
        if shown:
            md += '| | **Type** | **Default** | **Details** |\n|---|---|---|---|\n'
            for pname, kind, anno, default, det in shown:
                star = '\\*' if kind == inspect.Parameter.VAR_POSITIONAL else '\\*\\*' if kind == inspect.Parameter.VAR_KEYWORD else ''
                nm = pname if pname.startswith('**') else f'{star}{pname}'
                dflt = '' if default is _empty else f'`{_cell(repr(default))}`'
                md += f'| {nm} | {_cell(anno)} | {dflt} | {_cell(det)} |\n'
        return md


def install():
    "Make `nbdev.showdoc.show_doc` use `TableRenderer` in this (docs build) process."
    import nbdev.showdoc
    nbdev.showdoc.BasicMarkdownRenderer = TableRenderer
