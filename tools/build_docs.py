#!/usr/bin/env python
"""Build the documentation site: every notebook under nbs/, executed, rendered to static HTML in _site/.

    python tools/build_docs.py                 # the whole site into _site/ (what `make docs` runs)
    python tools/build_docs.py --check         # ... then open every page in headless Chromium, screenshots in _site/_screenshots/
    python tools/build_docs.py nbs/01_losses.ipynb   # only that page (the rest of _site/ is kept)

Cells flagged `slow` or `cuda` are not run (as in `nbdev_test`). Executed notebooks are cached in .cache/docs/,
keyed by the notebook, the library and this code, so a rebuild runs only what changed (--no-cache to run all).
With Quarto installed, `nbdev_docs` builds nbdev's own site from the same notebooks into _docs/.
"""
import argparse, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs.site import build, ROOT   # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', help='build only these notebooks (default: all)')
    ap.add_argument('--out', default=str(ROOT/'_site'), help='site folder (default: _site)')
    ap.add_argument('--jobs', '-j', type=int, default=None, help='notebooks executed at once (default: CPU count)')
    ap.add_argument('--no-cache', action='store_true', help='execute every notebook, ignoring .cache/docs/')
    ap.add_argument('--strict', action='store_true', help='fail on problems (math KaTeX cannot render, outside resources)')
    ap.add_argument('--timeout', type=int, default=None, help='seconds one cell may run (default: no limit)')
    ap.add_argument('--fresh', action='store_true', help='a new process for each notebook (default: reuse, as nbdev_test)')
    ap.add_argument('--check', action='store_true', help='then check every page in headless Chromium and save screenshots')
    a = ap.parse_args(argv)
    s = build(Path(a.out), jobs=a.jobs, use_cache=not a.no_cache, only=a.notebooks or None, strict=a.strict,
              timeout=a.timeout, fresh_process=a.fresh)
    if s['failed']: return 1
    if a.check:
        from docs.browser import check_site, format_reports
        reports = check_site(Path(s['out']), shots=Path(s['out'])/'_screenshots')
        print(format_reports(reports))
        if any(r.problems for r in reports): return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
