"""Would `nbdev_docs` (Quarto) build this notebook? A static check of the one way it fails that the tests don't see.

`nbdev_docs` does not run notebooks: it runs only the cells that `show_doc` needs (exported cells, cells with an
import, `show_doc` cells). A cell that mixes an import with other code runs there without the cells before it, so
a name it takes from a skipped cell is a NameError and the whole site fails ("Error in notebook ... in cell N").
This finds those names without running anything.
"""
from __future__ import annotations
import ast, builtins, importlib
from pathlib import Path

_SHOW_DIRS = {'export', 'exports', 'exporti', 'exec_doc'}


def _bound(tree) -> set[str]:
    "Names a piece of code binds (imports, defs, assignments, loop and with targets)."
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import): out |= {a.asname or a.name.split('.')[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            for a in n.names:
                if a.name == '*':
                    try:
                        m = importlib.import_module(n.module)
                        out |= set(getattr(m, '__all__', None) or [k for k in vars(m) if not k.startswith('_')])
                    except Exception: pass
                else: out.add(a.asname or a.name)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)): out.add(n.id)
        elif isinstance(n, ast.arg): out.add(n.arg)
        elif isinstance(n, ast.ExceptHandler) and n.name: out.add(n.name)
    return out


def _loaded(tree) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _has(trees, types): return any(isinstance(n, types) for t in trees for n in ast.walk(t))


def nbdev_docs_failures(path) -> list[str]:
    "Cells `nbdev_docs` would run that need a name only a skipped cell defines: ['cell N: name, ...']."
    from nbdev.process import NBProcessor
    nb = NBProcessor(Path(path)).nb
    run, mixed = [], []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code' or not c.source or 'nbdev_export' + '(' in c.source: continue
        if c.directives_.get('eval:', [''])[0].lower() == 'false': continue
        try: trees = ast.parse(c.source).body
        except SyntaxError: continue
        imports = _has(trees, (ast.Import, ast.ImportFrom))
        showdoc = any(isinstance(t, ast.Expr) and isinstance(t.value, ast.Call) and getattr(t.value.func, 'id', '') == 'show_doc'
                      for t in trees)
        if c.directives_.keys() & _SHOW_DIRS or imports or showdoc:
            run.append((i, trees))
            if imports and _has(trees, (ast.Expr, ast.Assign)) and not c.directives_.keys() & _SHOW_DIRS: mixed.append((i, trees))
    known = set(dir(builtins)) | {'show_doc', 'get_ipython', '__file__'}
    for _, trees in run:
        for t in trees: known |= _bound(t)
    out = []
    for i, trees in mixed:
        missing = sorted(set().union(*(_loaded(t) for t in trees)) - known)
        if missing: out.append(f'cell {i}: {", ".join(missing)}')
    return out
