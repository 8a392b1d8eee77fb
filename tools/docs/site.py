"""Build the whole site: find the notebooks, execute them in parallel (or take them from the cache), write the pages.

Pages are named as nbdev and Quarto name them (`nbs/01_losses.ipynb` -> `losses.html`,
`nbs/tutorials/02_pytorch_loop.ipynb` -> `tutorials/pytorch_loop.html`), so the links in `softsil_nb/_modidx.py`
and those nbdev writes (`losses.html#softsilhouetteloss`) work here too.
"""
from __future__ import annotations
import concurrent.futures as cf
import configparser, hashlib, html, json, multiprocessing as mp, os, shutil, sys, time, traceback
from dataclasses import dataclass, asdict
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MARKER = '.softsil-docs-site'
SECTIONS = {'': 'Library', 'tutorials': 'Tutorials'}


@dataclass
class Page:
    src: str            # notebook, relative to the repo root
    href: str           # page, relative to the site root
    section: str
    title: str
    description: str = ''


def settings(root:Path=ROOT) -> dict:
    cp = configparser.ConfigParser(); cp.read(root/'settings.ini')
    return dict(cp['DEFAULT'])


def _front(path:Path) -> dict:
    "Title and description, as nbdev reads them (front matter or the first `# Title` / `> summary` cell)."
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    return dict(getattr(NBProcessor(path, procs=[FrontmatterProc], process=True).nb, 'frontmatter_', {}) or {})


def discover(root:Path=ROOT) -> list[Page]:
    "Every notebook under nbs/ (as tests/test_notebooks.py finds them), in reading order: index, library, tutorials."
    from .render import _html_name
    cfg = settings(root)
    nbs = root/cfg.get('nbs_path', 'nbs')
    found = sorted(p for p in nbs.rglob('*.ipynb')
                   if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_')
                   and not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts[:-1]))
    pages = []
    for p in found:
        rel = p.relative_to(nbs)
        folder = rel.parent.as_posix() if rel.parent != Path('.') else ''
        fm = _front(p)
        href = (PurePosixPath(folder)/_html_name(p.name)).as_posix() if folder else _html_name(p.name)
        pages.append(Page(src=p.relative_to(root).as_posix(), href=href,
                          section=SECTIONS.get(folder, folder.replace('_', ' ').title()),
                          title=str(fm.get('title') or p.stem), description=str(fm.get('description') or '')))
    order = {s: i for i, s in enumerate(SECTIONS.values())}
    pages.sort(key=lambda pg: (pg.href != 'index.html', order.get(pg.section, 99), pg.src))
    return pages


def _rel(frm:str, to:str) -> str:
    "Relative link from page `frm` to page `to` (both relative to the site root)."
    depth = len(PurePosixPath(frm).parts) - 1
    return '../' * depth + to


def nav_html(pages:list[Page], current:Page) -> str:
    out, section = ['<ul class="nav">'], None
    for pg in pages:
        if pg.href != 'index.html' and pg.section != section:
            if section is not None: out.append('</ul></li>')
            section = pg.section
            out.append(f'<li class="nav-section"><span>{html.escape(section)}</span><ul>')
        cls = ' class="active" aria-current="page"' if pg is current else ''
        title = f' title="{html.escape(pg.description)}"' if pg.description else ''
        out.append(f'<li><a href="{_rel(current.href, pg.href)}"{cls}{title}>{html.escape(pg.title)}</a></li>')
    if section is not None: out.append('</ul></li>')
    out.append('</ul>')
    return ''.join(out)


def site_context(pages:list[Page], page:Page, name:str, skip_flags) -> dict:
    i = pages.index(page)
    link = lambda pg: {'href': _rel(page.href, pg.href), 'title': pg.title} if pg else None
    return {'name': name, 'title': page.title, 'description': page.description, 'description_html': '',
            'root': '../' * (len(PurePosixPath(page.href).parts) - 1), 'href': page.href, 'source': page.src,
            'nav_html': nav_html(pages, page), 'prev': link(pages[i-1] if i > 0 else None),
            'next': link(pages[i+1] if i + 1 < len(pages) else None), 'skip_flags': list(skip_flags)}


def page_shell(site:dict, body:str) -> str:
    "A plain page with the site's frame (used for notebooks that failed to build)."
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(site["title"])}</title>'
            f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{site["root"]}assets/site.css"></head><body>'
            f'<nav class="sidebar"><a class="site-name" href="{site["root"]}index.html">{html.escape(site["name"])}</a>'
            f'{site["nav_html"]}</nav><div class="page"><main id="content" class="content"><header class="page-header">'
            f'<h1 class="title">{html.escape(site["title"])}</h1></header>{body}</main></div></body></html>')


# ---- one page (runs in a fresh worker process) ----

def _worker_init(threads:int, root:str):
    if threads: 
        for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'): os.environ.setdefault(v, str(threads))
    if root not in sys.path: sys.path.insert(0, root)
    mp.set_start_method('fork', force=True)     # as under nbdev_test: DataLoader workers inherit the notebook's objects
    os.environ.setdefault('MPLBACKEND', 'Agg')


def build_page(job:dict) -> dict:
    "Execute (or load from the cache) and render one notebook; never raises, reports instead."
    from .execute import process_notebook, to_nbformat, NotebookError
    from .katex import Katex
    from .render import render_page, error_page
    t0 = time.time()
    res = {'src': job['src'], 'href': job['site']['href'], 'ok': False, 'cached': False, 'exec_s': 0.0,
           'problems': [], 'error': None}
    out_html = Path(job['out'])/job['site']['href']
    cache = Path(job['cache'])/f'{job["key"]}.json' if job.get('cache') else None
    try:
        if cache is not None and cache.exists():
            nbd, res['cached'] = json.loads(cache.read_text()), True
        else:
            nb, res['exec_s'] = process_notebook(ROOT/job['src'], skip_flags=job['skip_flags'], timeout=job.get('timeout'))
            nbd = to_nbformat(nb)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f'.{os.getpid()}.tmp'); tmp.write_text(json.dumps(nbd)); tmp.replace(cache)
        t_render = time.time()
        katex = Katex()
        try: res['problems'] = render_page(nbd, katex=katex, out_html=out_html, site=job['site'], doc_url=job['doc_url'])
        finally: katex.close()
        res['render_s'] = time.time() - t_render
        res['ok'] = True
    except NotebookError as e:
        res['error'] = str(e)
    except Exception:
        res['error'] = traceback.format_exc()
    if res['error']:
        try: error_page(out_html=out_html, site=job['site'], message=res['error'])
        except Exception: pass
    res['total_s'] = time.time() - t0
    return res


# ---- the whole site ----

def fix_fragments(out:Path, hrefs:list[str]) -> int:
    """Point links to an API entry that has no anchor at the nearest one that exists: nbdev's links name methods
    (`experiments.html#runconfig.key`) that have a `show_doc` only when the notebook asks for one."""
    from bs4 import BeautifulSoup
    from urllib.parse import urlsplit
    soups = {h: BeautifulSoup((out/h).read_text(encoding='utf-8'), 'html.parser') for h in hrefs if (out/h).exists()}
    ids = {h: {e['id'] for e in s.find_all(id=True)} for h, s in soups.items()}
    fixed = 0
    for h, s in soups.items():
        changed = False
        for a in s.find_all('a', href=True):
            u = urlsplit(a['href'])
            if u.scheme or u.netloc or not u.fragment: continue
            target = (PurePosixPath(h).parent/u.path).as_posix() if u.path else h
            target = os.path.normpath(target)
            if target not in ids or u.fragment in ids[target]: continue
            frag = u.fragment
            while '.' in frag and frag not in ids[target]: frag = frag.rsplit('.', 1)[0]
            a['href'] = (u.path or '') + (f'#{frag}' if frag in ids[target] else '')
            changed, fixed = True, fixed + 1
        if changed: (out/h).write_text(str(s), encoding='utf-8')
    return fixed


def _hash_files(h, paths):
    for p in sorted(paths):
        h.update(str(p.relative_to(ROOT)).encode()); h.update(b'\0'); h.update(p.read_bytes()); h.update(b'\0')


def cache_key(page:Page, skip_flags, lib_path:str) -> str:
    "Changes when the notebook, the library, the settings or the executing code change."
    h = hashlib.sha256()
    _hash_files(h, [ROOT/page.src, ROOT/'settings.ini', HERE/'execute.py', HERE/'showdoc.py',
                    *(ROOT/lib_path).rglob('*.py')])
    h.update(' '.join(skip_flags).encode()); h.update(sys.version.encode())
    return h.hexdigest()[:24]


def write_assets(out:Path):
    from pygments.formatters import HtmlFormatter
    from .katex import copy_assets
    assets = out/'assets'
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE/'static'/'site.css', assets/'site.css')
    (assets/'pygments.css').write_text(HtmlFormatter(style='default').get_style_defs('.highlight'))
    copy_assets(assets/'katex')
    (out/'.nojekyll').write_text('')


def _prepare_out(out:Path, partial:bool):
    if out.exists() and any(out.iterdir()) and not (out/MARKER).exists():
        raise SystemExit(f'{out} exists and is not a site this script built (no {MARKER}); choose another --out')
    if out.exists() and not partial: shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out/MARKER).write_text('built by tools/build_docs.py; the whole folder is replaced on each build\n')


def build(out:Path=ROOT/'_site', jobs:int|None=None, use_cache:bool=True, only:list[str]|None=None,
          strict:bool=False, timeout:int|None=None, log=print, fresh_process:bool=False) -> dict:
    """Build the site into `out`; returns a summary (also written to `out/build.json`).
    Like `nbdev_test`, a worker process runs several notebooks one after the other (imports are paid once per
    worker); `fresh_process=True` gives each notebook a new process instead."""
    from .katex import katex_missing
    why = katex_missing()
    if why: raise SystemExit(why)
    t0 = time.time()
    cfg = settings()
    skip_flags = tuple(cfg.get('tst_flags', 'slow cuda').split())
    pages = discover()
    chosen = [pg for pg in pages if not only or any(pg.src.endswith(o) or Path(o).resolve() == (ROOT/pg.src).resolve()
                                                     for o in only)]
    if only and not chosen: raise SystemExit(f'no notebook matches {only}')
    out = Path(out).resolve()
    _prepare_out(out, partial=bool(only))
    write_assets(out)
    doc_url = cfg.get('doc_host', '').rstrip('/') + '/' + cfg.get('doc_baseurl', '').strip('/') + '/'
    cache_dir = ROOT/'.cache'/'docs' if use_cache else None
    timings_f = ROOT/'.cache'/'docs-timings.json'
    try: prev = json.loads(timings_f.read_text())
    except Exception: prev = {}
    jobs_list = [{'src': pg.src, 'out': str(out), 'cache': str(cache_dir) if cache_dir else None,
                  'key': cache_key(pg, skip_flags, cfg.get('lib_path', 'softsil_nb')), 'skip_flags': skip_flags,
                  'timeout': timeout, 'doc_url': doc_url, 'site': site_context(pages, pg, cfg.get('title', 'docs'), skip_flags)}
                 for pg in chosen]
    # longest first (better use of the workers); unknown ones in the reverse of tests/test_notebooks.py's order, so
    # that a notebook test running at the same time and writing the cache (see run_notebook) meets this build halfway
    jobs_list.sort(key=lambda j: j['src'], reverse=True)
    jobs_list.sort(key=lambda j: -prev.get(j['src'], 0))
    n = max(1, min(jobs or os.cpu_count() or 1, len(jobs_list)))
    threads = max(1, (os.cpu_count() or 1) // n)
    log(f'building {len(jobs_list)} pages into {out} with {n} worker(s)')
    results = []
    ctx = mp.get_context('spawn')
    with cf.ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init, initargs=(threads, str(ROOT)),
                                max_tasks_per_child=1 if fresh_process else None) as ex:
        futs = {ex.submit(build_page, j): j for j in jobs_list}
        for f in cf.as_completed(futs):
            try: r = f.result()
            except Exception as e:   # the worker died (out of memory, a crash in native code)
                r = {'src': futs[f]['src'], 'href': futs[f]['site']['href'], 'ok': False, 'cached': False,
                     'exec_s': 0.0, 'total_s': 0.0, 'problems': [], 'error': f'worker process failed: {e!r}'}
            results.append(r)
            state = 'ok  ' if r['ok'] and not (strict and r['problems']) else 'FAIL'
            log(f'  {state} {r["total_s"]:6.1f} s  {r["src"]} -> {r["href"]}{"  (cached)" if r["cached"] else ""}')
            for p in r['problems']: log(f'       problem: {p}')
    if not only: fix_fragments(out, [pg.href for pg in pages])
    for r in results:
        if not r['cached'] and r['ok']: prev[r['src']] = r['total_s']
    try:
        timings_f.parent.mkdir(parents=True, exist_ok=True); timings_f.write_text(json.dumps(prev, indent=1))
    except OSError: pass
    failed = [r for r in results if not r['ok'] or (strict and r['problems'])]
    summary = {'out': str(out), 'seconds': round(time.time() - t0, 1), 'workers': n, 'pages': sorted(results, key=lambda r: r['href']),
               'failed': [r['src'] for r in failed], 'pages_list': [asdict(p) for p in pages]}
    (out/'build.json').write_text(json.dumps(summary, indent=1))
    for r in failed:
        if r['error']: log(f'\n{r["src"]} failed:\n{r["error"]}')
    log(f'{"FAILED" if failed else "built"}: {len(results) - len(failed)}/{len(results)} pages in {summary["seconds"]} s'
        f' -> {out/"index.html"}')
    return summary


def run_notebook(path, write_cache:bool=True, showerr:bool=True) -> tuple[bool, float]:
    """Execute one notebook as `nbdev_test` does (always: the cache is written, never read here) and store the result
    in the docs cache (.cache/docs/), so that a docs build after it renders the page without running the notebook
    again. Returns (ok, seconds), like nbdev's `test_nb`; for tests/test_notebooks.py."""
    from .execute import process_notebook, to_nbformat, NotebookError
    t0 = time.time()
    path = Path(path).resolve()
    cfg = settings()
    skip_flags = tuple(cfg.get('tst_flags', 'slow cuda').split())
    try: nb, _ = process_notebook(path, skip_flags=skip_flags)
    except NotebookError as e:
        if showerr: sys.stderr.write(str(e) + '\n')
        return False, time.time() - t0
    if write_cache:
        page = Page(src=path.relative_to(ROOT).as_posix(), href='', section='', title='')
        cache = ROOT/'.cache'/'docs'/f'{cache_key(page, skip_flags, cfg.get("lib_path", "softsil_nb"))}.json'
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f'.{os.getpid()}.tmp'); tmp.write_text(json.dumps(to_nbformat(nb))); tmp.replace(cache)
    return True, time.time() - t0
