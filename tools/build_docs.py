#!/usr/bin/env python
"""Build the documentation site with MkDocs (Material): every notebook under nbs/, executed, into _site/.

    python tools/build_docs.py                 # the whole site into _site/ (what `make docs` runs)
    python tools/build_docs.py --out DIR       # elsewhere
    python -m mkdocs serve -f mkdocs.yml       # not this: the pages are written by this script (see tools/docs/site.py)

Cells flagged `slow` or `cuda` are not run (as in `nbdev_test`). Executed notebooks are cached in .cache/docs/,
keyed by the notebook, the library and the executing code, so a rebuild runs only what changed (--no-cache to run
all); tests/test_notebooks.py fills the same cache. With Quarto installed, `nbdev_docs` builds nbdev's own site.
"""
import argparse, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs.site import build, ROOT   # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='site folder (default: _site)')
    ap.add_argument('--jobs', '-j', type=int, default=None, help='notebooks executed at once (default: CPU count)')
    ap.add_argument('--no-cache', action='store_true', help='execute every notebook, ignoring .cache/docs/')
    ap.add_argument('--timeout', type=int, default=None, help='seconds one cell may run (default: no limit)')
    a = ap.parse_args(argv)
    return 1 if build(Path(a.out), jobs=a.jobs, use_cache=not a.no_cache, timeout=a.timeout)['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
