"""The site: find the notebooks, execute them (or take them from the cache), write them as Markdown pages for
MkDocs (Material theme), and build.

What MkDocs cannot do and this does: run the notebooks as `nbdev_test` does (execute.py), and write a processed
notebook as a Markdown page (`to_markdown`: code, outputs as results, figures as files, Quarto cell options).
Pages are named as nbdev and Quarto name them (`nbs/01_losses.ipynb` -> `losses.html`,
`nbs/tutorials/02_pytorch_loop.ipynb` -> `tutorials/pytorch_loop.html`), so nbdev's links (`_modidx.py`) work here.
The navigation is every notebook under nbs/ in reading order; a new notebook needs no configuration.
"""
from __future__ import annotations
import concurrent.futures as cf
import base64, configparser, hashlib, json, multiprocessing as mp, os, re, shutil, sys, tempfile, time, traceback
from dataclasses import dataclass, asdict
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
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


def html_name(name:str) -> str:
    "Page name of a notebook, as nbdev and Quarto name it (lower case, numeric prefix dropped)."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', name.lower()).rsplit('.', 1)[0] + '.html'


def _front(path:Path) -> dict:
    "Title and description, as nbdev reads them (front matter or the first `# Title` / `> summary` cell)."
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    return dict(getattr(NBProcessor(path, procs=[FrontmatterProc], process=True).nb, 'frontmatter_', {}) or {})


def discover(root:Path=ROOT) -> list[Page]:
    "Every notebook under nbs/ (as tests/test_notebooks.py finds them), in reading order: index, library, tutorials."
    nbs = root/settings(root).get('nbs_path', 'nbs')
    found = sorted(p for p in nbs.rglob('*.ipynb')
                   if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_')
                   and not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts[:-1]))
    pages = []
    for p in found:
        folder = p.relative_to(nbs).parent.as_posix().strip('.')
        fm = _front(p)
        pages.append(Page(src=p.relative_to(root).as_posix(), href=(PurePosixPath(folder or '.')/html_name(p.name)).as_posix(),
                          section=SECTIONS.get(folder, folder.replace('_', ' ').title()),
                          title=str(fm.get('title') or p.stem), description=str(fm.get('description') or '')))
    order = {s: i for i, s in enumerate(SECTIONS.values())}
    pages.sort(key=lambda pg: (pg.href != 'index.html', order.get(pg.section, 99), pg.src))
    return pages


def nav(pages:list[Page], cfg:dict) -> list:
    "MkDocs' navigation: the index, a section per folder, then the repository's issues."
    out, sections = [], {}
    for pg in pages:
        item = {pg.title: pg.href[:-5] + '.md'}
        if pg.href == 'index.html': out.append(item)
        else:
            if pg.section not in sections: sections[pg.section] = []; out.append({pg.section: sections[pg.section]})
            sections[pg.section].append(item)
    out.append({'Issues': cfg['git_url'].rstrip('/') + '/issues'})
    return out


# ---- a processed notebook as a Markdown page ----

_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_warn = re.compile(r'^\S*?[\w.-]+\.py:\d+: (\w*Warning: .*)$')   # "/a/b/c.py:12: UserWarning: ..." -> the warning


def scrub(text:str) -> str:
    "Output without the paths of the machine that built the docs: the repository is `.`, the home folder `~`."
    for path, short in ((sys.prefix, '<venv>'), (str(ROOT), '.'), (str(Path.home()), '~')): text = text.replace(path, short)
    return text


def clean_stream(text:str) -> str:
    "A warning as its message, without the file (a path of the machine that ran it) and the source line after it."
    out, skip = [], False
    for line in text.splitlines():
        if skip and line.startswith('  '): skip = False; continue
        m = _re_warn.match(line)
        skip = bool(m)
        out.append(m.group(1) if m else line)
    return scrub('\n'.join(out))


def _fence(text:str, cls:str='nb-output', lang:str='text') -> str:
    n = max([3] + [len(m) + 1 for m in re.findall(r'`{3,}', text)])
    return f'\n{"`" * n}{{ .{lang} .{cls} }}\n{text.rstrip()}\n{"`" * n}\n\n'


def _src(s): return ''.join(s) if isinstance(s, list) else (s or '')


def _output_md(o:dict, files:dict, stem:str, key:str, links) -> str:
    "One output as Markdown; figures go to `files` (name -> bytes) under `<stem>_files/`."
    strip = lambda s: re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', s)
    t = o.get('output_type')
    if t == 'stream': return _fence(strip(clean_stream(_src(o.get('text')))))
    if t == 'error': return _fence(strip(scrub('\n'.join(o.get('traceback', [])))), 'nb-error')
    d = o.get('data', {})
    for mime, ext in (('image/png', 'png'), ('image/jpeg', 'jpg'), ('image/svg+xml', 'svg')):
        if mime in d:
            name = f'{stem}_files/{key}.{ext}'
            files[name] = _src(d[mime]).encode() if ext == 'svg' else base64.b64decode(_src(d[mime]))
            return f'\n![figure]({name}){{ .nb-figure }}\n\n'
    if 'text/html' in d: return f'\n<div class="nb-output nb-html" markdown="0">\n{scrub(_src(d["text/html"])).strip()}\n</div>\n\n'
    if 'text/markdown' in d:      # show_doc's: a string annotation (`'Tensor'`) reads as the type
        return '\n' + links(re.sub(r"ForwardRef\('([\w.]+)'\)", r'\1', _src(d['text/markdown']))) + '\n\n'
    if 'text/latex' in d: return '$$\n' + _src(d['text/latex']).strip().strip('$') + '\n$$\n'
    if 'text/plain' in d: return _fence(strip(scrub(_src(d['text/plain']))))
    return ''


def _links(md:str, href:str, doc_url:str) -> str:
    "nbdev's absolute links to the site (doc_host), links to notebooks and to pages become links MkDocs checks."
    up = '../' * (len(PurePosixPath(href).parts) - 1)
    md = re.sub(re.escape(doc_url) + r'([\w/.-]+)\.html', lambda m: up + m.group(1) + '.md', md)
    md = re.sub(r'\]\((?![a-z]+:|/|#)((?:[\w.-]+/)*)([\w.-]+)\.ipynb', lambda m: f']({m.group(1)}{html_name(m.group(2))[:-5]}.md', md)
    return re.sub(r'\]\((?![a-z]+:|/|#)((?:[\w.-]+/)*[\w-]+)\.html', r'](\1.md', md)     # a page by its name


def to_markdown(nbd:dict, page:Page, doc_url:str) -> tuple[str, dict]:
    "The page for a processed notebook (`execute.to_nbformat`): (markdown, {file name: bytes})."
    stem = PurePosixPath(page.href).stem
    files, parts = {}, [f'# {page.title}\n']
    if page.description: parts.append(f'{page.description}\n{{ .nb-description }}\n')
    for i, c in enumerate(nbd['cells']):
        src = _src(c.get('source'))
        if c['cell_type'] == 'markdown': parts.append(_links(src, page.href, doc_url) + '\n'); continue
        if c['cell_type'] != 'code': continue
        lines, opts = src.splitlines(), {}
        while lines and (m := _re_opt.match(lines[0])): opts[m.group(1)] = m.group(2).strip('"\''); lines.pop(0)
        code = '\n'.join(lines).strip('\n')
        if opts.get('include') == 'false': continue
        outs = [] if opts.get('output') == 'false' else c.get('outputs', [])
        body = '\n'.join(_output_md(o, files, stem, f'cell{i}-{j}', lambda md: _links(md, page.href, doc_url)) for j, o in enumerate(outs))
        if c['metadata'].get('docs', {}).get('showdoc'): parts.append(f'<div class="showdoc" markdown>\n\n{body}\n</div>\n'); continue
        show = code.strip() and opts.get('echo') != 'false'
        cell = (_fence(code, 'nb-input', 'python') if show else '') + body
        if opts.get('code-fold') in ('true', 'show') and show:
            indent = lambda s: '\n'.join('    ' + l if l.strip() else l for l in s.splitlines())
            cell = f'{"???+" if opts["code-fold"] == "show" else "???"} note "{opts.get("code-summary", "Code")}"\n\n{indent(cell)}\n'
        if cell.strip(): parts.append(cell)
    return '\n\n'.join(parts), files


# ---- execution and the cache ----

def _hash_files(h, paths):
    for p in sorted(paths):
        h.update(str(p.relative_to(ROOT)).encode()); h.update(b'\0'); h.update(p.read_bytes()); h.update(b'\0')


def cache_key(src:str, skip_flags, lib_path:str) -> str:
    "Changes when the notebook, the library, the settings links are made from or the executing code change."
    h = hashlib.sha256()
    _hash_files(h, [ROOT/src, HERE/'execute.py', HERE/'showdoc.py', *(ROOT/lib_path).rglob('*.py')])
    cfg = settings()
    h.update(repr([cfg.get(k) for k in ('git_url', 'branch', 'doc_host', 'doc_baseurl', 'lib_path')]).encode())
    h.update(' '.join(skip_flags).encode()); h.update(sys.version.encode())
    return h.hexdigest()[:24]


def _write_atomic(p:Path, data:bytes):
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f'.{p.name}.{os.getpid()}.tmp'); tmp.write_bytes(data); tmp.replace(p)


def executed(src:str, cache:Path|None, timeout=None, read:bool=True) -> tuple[dict, bool, float]:
    "The processed, executed notebook `src` (from `cache` when there and `read`): (nbformat dict, cached, seconds)."
    from .execute import process_notebook, to_nbformat
    cfg = settings()
    skip = tuple(cfg.get('tst_flags', 'slow cuda').split())
    f = cache/f'{cache_key(src, skip, cfg.get("lib_path", "softsil_nb"))}.json' if cache else None
    if read and f is not None and f.exists(): return json.loads(f.read_text()), True, 0.0
    nb, secs = process_notebook(ROOT/src, skip_flags=skip, timeout=timeout)
    nbd = to_nbformat(nb)
    if f is not None: _write_atomic(f, json.dumps(nbd).encode())
    return nbd, False, secs


def _worker_init(threads:int, root:str):
    for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'): os.environ.setdefault(v, str(threads))
    if root not in sys.path: sys.path.insert(0, root)
    mp.set_start_method('fork', force=True)     # as under nbdev_test: DataLoader workers inherit the notebook's objects
    os.environ.setdefault('MPLBACKEND', 'Agg')


def build_page(job:dict) -> dict:
    "Execute (or load from the cache) one notebook and write its Markdown page; never raises, reports instead."
    from .execute import NotebookError
    t0, page = time.time(), Page(**job['page'])
    res = {'src': page.src, 'href': page.href, 'ok': False, 'cached': False, 'exec_s': 0.0, 'error': None}
    md_file = Path(job['docs_dir'])/(page.href[:-5] + '.md')
    try:
        nbd, res['cached'], res['exec_s'] = executed(page.src, Path(job['cache']) if job['cache'] else None, job['timeout'])
        md, files = to_markdown(nbd, page, job['doc_url'])
        for name, data in files.items(): _write_atomic(md_file.parent/name, data)
        _write_atomic(md_file, md.encode())
        res['ok'] = True
    except NotebookError as e: res['error'] = str(e)
    except Exception: res['error'] = traceback.format_exc()
    if res['error']:
        _write_atomic(md_file, f'# {page.title}\n\nThis notebook failed when the docs were built:\n\n{_fence(res["error"], "nb-error")}'.encode())
    res['total_s'] = time.time() - t0
    return res


# ---- the whole site ----

_re_api_id = re.compile(r'^#+ .* \{ #(\S+) \.api-name \}$', re.M)


def fix_fragments(docs_dir:Path):
    """nbdev links methods (`experiments.md#runconfig.key`) that have an entry only when the notebook shows one: such a
    link goes to the entry of the class instead."""
    mds = {p.relative_to(docs_dir).as_posix(): p for p in docs_dir.rglob('*.md')}
    ids = {k: set(_re_api_id.findall(p.read_text())) for k, p in mds.items()}
    def fix(m, here):
        target = os.path.normpath((PurePosixPath(here).parent/m.group(1)).as_posix())
        frag = m.group(2)
        while '.' in frag and frag not in ids.get(target, {frag}): frag = frag.rsplit('.', 1)[0]
        return f']({m.group(1)}#{frag})'
    for k, p in mds.items():
        p.write_text(re.sub(r'\]\(((?:\.\./)*[\w/.-]+\.md)#([\w.-]+)\)', lambda m: fix(m, k), p.read_text()))

def build(out:Path=ROOT/'_site', jobs:int|None=None, use_cache:bool=True, timeout:int|None=None, log=print) -> dict:
    "Build the site into `out` with MkDocs; returns a summary (also written to `out/build.json`)."
    npm = HERE/'node_modules'
    if not (npm/'katex'/'dist'/'katex.min.js').exists() or not (npm/'iframe-worker'/'shim'/'index.js').exists():
        raise SystemExit('KaTeX or iframe-worker is missing: run `make docs` (or `npm ci --prefix tools/docs`; needs npm)')
    t0, cfg, pages = time.time(), settings(), discover()
    doc_url = cfg.get('doc_host', '').rstrip('/') + '/' + cfg.get('doc_baseurl', '').strip('/') + '/'
    (ROOT/'.cache').mkdir(exist_ok=True)
    docs_dir = Path(tempfile.mkdtemp(prefix='docs-md-', dir=ROOT/'.cache'))     # the pages MkDocs reads; one per build
    try: return _build(out, docs_dir, cfg, pages, doc_url, jobs, use_cache, timeout, log, t0)
    finally: shutil.rmtree(docs_dir, ignore_errors=True)


def _build(out, docs_dir, cfg, pages, doc_url, jobs, use_cache, timeout, log, t0):
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    npm = HERE/'node_modules'
    shutil.copytree(HERE/'assets', docs_dir/'assets')
    # bundled, not from a CDN: KaTeX, and the shim Material's offline search loads from unpkg unless given one
    bundle = {'katex/dist/katex.min.js': 'katex/katex.min.js', 'katex/dist/katex.min.css': 'katex/katex.min.css',
              'katex/dist/contrib/auto-render.min.js': 'katex/contrib/auto-render.min.js', 'katex/dist/fonts': 'katex/fonts',
              'katex/LICENSE': 'katex/LICENSE', 'iframe-worker/shim/index.js': 'iframe-worker/shim.js',
              'iframe-worker/LICENSE': 'iframe-worker/LICENSE'}
    for f, to in bundle.items():
        (docs_dir/'assets'/to).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (npm/f).is_dir() else shutil.copy2)(npm/f, docs_dir/'assets'/to)
    jobs_list = [{'page': asdict(pg), 'docs_dir': str(docs_dir), 'cache': str(ROOT/'.cache'/'docs') if use_cache else None,
                  'timeout': timeout, 'doc_url': doc_url} for pg in pages]
    jobs_list.sort(key=lambda j: j['page']['src'], reverse=True)   # meets a running tests/test_notebooks.py halfway
    n = max(1, min(jobs or os.cpu_count() or 1, len(jobs_list)))
    log(f'executing {len(jobs_list)} notebooks (cached ones are read) with {n} worker(s)')
    results = []
    with cf.ProcessPoolExecutor(n, mp_context=mp.get_context('spawn'), initializer=_worker_init,
                                initargs=(max(1, (os.cpu_count() or 1) // n), str(ROOT))) as ex:
        futs = {ex.submit(build_page, j): j for j in jobs_list}
        for f in cf.as_completed(futs):
            try: r = f.result()
            except Exception as e:   # the worker died (out of memory, a crash in native code)
                j = futs[f]['page']
                r = {'src': j['src'], 'href': j['href'], 'ok': False, 'cached': False, 'exec_s': 0.0, 'total_s': 0.0,
                     'error': f'worker process failed: {e!r}'}
            results.append(r)
            log(f'  {"ok  " if r["ok"] else "FAIL"} {r["total_s"]:6.1f} s  {r["src"]} -> {r["href"]}{"  (cached)" if r["cached"] else ""}')
    fix_fragments(docs_dir)
    t1 = time.time()
    mk = load_config(str(ROOT/'mkdocs.yml'), docs_dir=str(docs_dir), site_dir=str(Path(out).resolve()), nav=nav(pages, cfg),
                     site_url=doc_url, repo_url=cfg['git_url'], edit_uri='')
    mkdocs_build(mk)
    failed = [r for r in results if not r['ok']]
    summary = {'out': str(Path(out).resolve()), 'seconds': round(time.time() - t0, 1), 'mkdocs_s': round(time.time() - t1, 1),
               'workers': n, 'pages': sorted(results, key=lambda r: r['href']), 'failed': [r['src'] for r in failed],
               'pages_list': [asdict(p) for p in pages]}
    (Path(out)/'build.json').write_text(json.dumps(summary, indent=1))
    for r in failed: log(f'\n{r["src"]} failed:\n{r["error"]}')
    log(f'{"FAILED" if failed else "built"}: {len(results) - len(failed)}/{len(results)} pages in {summary["seconds"]} s'
        f' (MkDocs {summary["mkdocs_s"]} s) -> {Path(out)/"index.html"}')
    return summary


def run_notebook(path, write_cache:bool=True, showerr:bool=True) -> tuple[bool, float]:
    """Execute one notebook as `nbdev_test` does (the cache is written, never read here) and store the result in the
    docs cache (.cache/docs/), so that a docs build after it does not run the notebook again. Returns (ok, seconds),
    like nbdev's `test_nb`; for tests/test_notebooks.py."""
    from .execute import NotebookError
    t0 = time.time()
    src = Path(path).resolve().relative_to(ROOT).as_posix()
    try: executed(src, ROOT/'.cache'/'docs' if write_cache else None, read=False)
    except NotebookError as e:
        if showerr: sys.stderr.write(str(e) + '\n')
        return False, time.time() - t0
    return True, time.time() - t0
