"""The documentation site (MkDocs + Material, `make docs`): every notebook a page (tools/docs/hooks.py), read as
HTML and opened in headless Chromium (Debian's `chromium`, driven by Playwright) from a server on 127.0.0.1 that the
test starts and stops. Needs KaTeX (npm, `make docs`), chromium and playwright (`make browser`).
Screenshots go to $DOCS_SCREENSHOTS (default: `_screenshots/` in the built site)."""
import ast, builtins, functools, http.server, importlib, inspect, json, os, re, shutil, subprocess, sys, threading
from types import SimpleNamespace
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, unquote

import pytest
from bs4 import BeautifulSoup
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent

CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')
LOSS_PAGE, LOSS_NB = 'losses.html', ROOT/'nbs'/'01_losses.ipynb'
CFG = get_config(path=ROOT)
GIT_URL = CFG['git_url'].rstrip('/')


def need(why):
    "Skip with `why` (which says how to get what is missing), except on CI, where it is a failure."
    if why is None: return
    if CI: pytest.fail(why)
    pytest.skip(why)


def katex_missing():
    if not (ROOT/'tools'/'docs'/'node_modules'/'katex'/'dist'/'katex.min.js').exists():
        return 'KaTeX is missing: `make docs` (npm ci --prefix tools/docs) installs it'


def browser_missing():
    how = "`make browser` (as root: apt-get install -y chromium; Playwright's own browser download is not used)"
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return 'the playwright package is not installed; ' + how
    if not shutil.which('chromium'): return 'chromium is not installed; ' + how


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    need(katex_missing())
    out = tmp_path_factory.mktemp('docs')/'site'
    jobs = 1 if os.environ.get('PYTEST_XDIST_WORKER') else (os.cpu_count() or 1)   # under xdist another worker is busy
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '-q', '-d', str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=3600, env={**os.environ, 'DOCS_JOBS': str(jobs)})
    # a notebook that fails is reported by test_every_notebook_is_a_page; the other pages are still checked
    assert (out/'build.json').exists(), f'the docs build did not run:\n{r.stdout[-8000:]}\n{r.stderr[-4000:]}'
    global PAGES
    PAGES = [SimpleNamespace(**p) for p in json.loads((out/'build.json').read_text())['pages']]
    return out


def soup(site, href): return BeautifulSoup((site/href).read_text(encoding='utf-8'), 'html.parser')
PAGES = []
def pages(): return PAGES       # as the build wrote them (build.json), in reading order


def test_every_notebook_is_a_page(site):
    bad = {p.src: p.error for p in pages() if p.error}
    assert not bad, 'pages that failed to build:\n' + '\n'.join(f'{k}:\n{v[-3000:]}' for k, v in bad.items())
    nbs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/'nbs').rglob('*.ipynb')
                 if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_'))
    assert sorted(p.src for p in pages()) == nbs                  # a new notebook is a page without configuration
    hrefs = {p.href for p in pages()}
    assert {'index.html', LOSS_PAGE, 'tutorials/pytorch_loop.html', 'tutorials/visualising.html'} <= hrefs
    for p in pages():
        page = soup(site, p.href)
        assert page.select_one('article h1').get_text(strip=True).rstrip('¶') == p.title, p.href
        nav = {os.path.normpath((Path(p.href).parent/a['href']).as_posix().split('#')[0])
               for a in page.select('nav.md-nav--primary a.md-nav__link[href]') if not urlsplit(a['href']).scheme}
        assert hrefs <= nav, (p.href, hrefs - nav)                # every page links every page
        assert page.select_one('nav.md-nav--primary a.md-nav__link--active').get_text(strip=True) == p.title


def _targets(site):
    "Every (file, tag, url) that loads or links something, on all pages."
    for f in sorted(site.rglob('*.html')):
        if '_screenshots' in f.parts or f.name == '404.html': continue    # 404.html links from the site's root URL
        s = BeautifulSoup(f.read_text(encoding='utf-8'), 'html.parser')
        for tag, attr in (('a', 'href'), ('link', 'href'), ('img', 'src'), ('script', 'src'), ('iframe', 'src'), ('source', 'src')):
            for el in s.find_all(tag):
                if el.get(attr) is not None and 'canonical' not in el.get('rel', []): yield f, tag, el[attr]   # canonical: the published address


def test_pages_load_nothing_from_outside_and_no_link_is_broken(site):
    ids = {}
    for f, tag, url in _targets(site):
        u = urlsplit(url)
        if tag == 'a' and u.scheme in ('http', 'https', 'mailto'): continue      # links out are fine; loads are not
        assert u.scheme in ('', 'data'), f'{f.name}: <{tag}> loads {url} from outside the site'
        if u.scheme == 'data': continue
        target = (f.parent/unquote(u.path)).resolve() if u.path else f
        assert target.exists() and site.resolve() in target.parents, f'{f.name}: broken {tag} -> {url}'
        if u.fragment and target.suffix == '.html':
            if target not in ids: ids[target] = {e['id'] for e in BeautifulSoup(target.read_text(), 'html.parser').find_all(id=True)}
            assert u.fragment in ids[target], f'{f.name}: no #{u.fragment} in {target.name}'
    css = (site/'assets'/'katex'/'dist'/'katex.min.css').read_text()
    for font in re.findall(r'url\((fonts/[^)]+)\)', css):
        assert (site/'assets'/'katex'/'dist'/font).exists(), font                       # KaTeX's fonts travel with the site


def test_repository_issues_paper_and_source_links(site):
    idx = soup(site, 'index.html')
    assert idx.select_one('article a[href="https://arxiv.org/abs/2604.08573"]'), 'the index links the paper'
    for p in pages():
        page = soup(site, p.href)
        assert page.select_one(f'a.md-source[href="{GIT_URL}"]'), p.href                       # the repository
        assert page.select_one(f'a[href="{GIT_URL}/issues"]'), p.href                           # its issues
        prev, nxt = page.select_one('a.md-footer__link--prev'), page.select_one('a.md-footer__link--next')
        assert (prev is None) == (p.href == 'index.html') and (nxt is None) == (p is pages()[-1]), p.href
    from softsil_nb.losses import SoftSilhouetteLoss
    a = soup(site, LOSS_PAGE).find(id='softsilhouetteloss').find_next('a', class_='api-source')
    line = next(i for i, l in enumerate((ROOT/'softsil_nb'/'losses.py').read_text().splitlines(), 1)
                if l.startswith('class SoftSilhouetteLoss'))
    assert a['href'] == f'{GIT_URL}/blob/{CFG["branch"]}/softsil_nb/losses.py#L{line}'
    n_api = n_src = 0
    for p in pages():                                             # every API entry has its source link
        for h in soup(site, p.href).select('.showdoc .api-name'):
            n_api += 1
            src = h.find_next(class_='api-source')
            assert src is not None and src['href'].startswith(f'{GIT_URL}/blob/') and '#L' in src['href'], (p.href, h['id'])
            n_src += 1
    assert n_api == n_src >= 20


def test_other_libraries_are_not_linked_to_ours(site):
    "\"scikit-learn's `pairwise_distances`\" goes to scikit-learn's docs, or is plain text, never to our function."
    n = 0
    for p in pages():
        for a in soup(site, p.href).select('article a'):
            before = a.find_previous(string=True)
            if before and re.search(r"(scikit-learn|pytorch-metric-learning|PML|sklearn)['’]s\s*$", before):
                assert urlsplit(a['href']).scheme == 'https' and 'softsil' not in a['href'], (p.href, a)
                n += 1
    assert n >= 3


def _markdown_math(nb:Path):
    "The TeX of every `$$...$$` and `$...$` in the notebook's markdown cells."
    out = []
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'markdown': continue
        src = re.sub(r'`[^`]*`', '', ''.join(c['source']))
        for m in re.finditer(r'\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$', src, re.DOTALL): out.append((m.group(1) or m.group(2)).strip())
    return out


def test_math_is_marked_for_katex(site):
    page = soup(site, LOSS_PAGE)
    tex = _markdown_math(LOSS_NB)
    assert tex, 'the loss notebook has formulas'
    marked = {re.sub(r'^\\[\[(]|\\[\])]$', '', a.get_text()).strip() for a in page.select('.arithmatex')}
    assert not [t for t in tex if t not in marked], 'formulas arithmatex did not mark for KaTeX'


def test_api_reference_tables(site):
    from softsil_nb.losses import SoftSilhouetteLoss, soft_silhouette_loss
    page = soup(site, LOSS_PAGE)
    for obj in (SoftSilhouetteLoss, soft_silhouette_loss):
        h = page.find(id=obj.__name__.lower())          # the anchor _modidx.py links to
        assert h is not None and h.name == 'h3' and h.find_parent('div', class_='showdoc'), obj.__name__
        table = h.find_next('table')
        assert [th.get_text(strip=True) for th in table.find_all('th')] == ['', 'Type', 'Default', 'Details']
        rows = {tr.find('td').get_text(strip=True): [td.get_text(' ', strip=True) for td in tr.find_all('td')]
                for tr in table.find('tbody').find_all('tr')}
        params = inspect.signature(obj).parameters
        assert [r for r in rows if r != 'Returns'] == list(params), obj.__name__
        assert rows['temperature'][2] == repr(params['temperature'].default)
    rows = {tr.find('td').get_text(strip=True): tr for tr in page.find(id='soft_silhouette_loss').find_next('table').find_all('tr')[1:]}
    assert 'tau' in rows['temperature'].get_text()               # the docments are the details


def test_hidden_and_exported_cells_are_not_pages_content(site):
    "nbdev_clean strips cell tags: the `#| hide` / `#| export` directives decide (the exported code is in show_doc)."
    code = ' '.join(c.get_text() for c in soup(site, LOSS_PAGE).select('article pre'))
    assert 'class SoftSilhouetteLoss(' not in code and 'def soft_silhouette_loss(' not in code
    for p in pages():
        text = soup(site, p.href).find('article').get_text()
        assert '#| ' not in text and '#|hide' not in text, p.href


def test_outputs_carry_no_machine_paths(site):
    home, prefix = str(Path.home()), sys.prefix
    for p in pages():
        text = soup(site, p.href).find('article').get_text()
        for bad in (str(ROOT), str(ROOT.parent) + '/', home + '/', prefix, 'site-packages'):
            assert bad not in text, f'{p.href} shows a path of this machine: {bad}'


def test_figures_are_files_next_to_their_page(site):
    n = 0
    for f in site.rglob('*.html'):
        for img in BeautifulSoup(f.read_text(), 'html.parser').select('article img'):
            p = f.parent/img['src']
            assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' or p.suffix in ('.jpg', '.jpeg', '.svg'), p
            n += 1
    assert n >= 5, 'the tutorials alone draw five figures'


# ---- nbdev_docs (Quarto) on the same notebooks ----

_SHOW_DIRS = {'export', 'exports', 'exporti', 'exec_doc'}


def _bound(tree) -> set:
    "Names a piece of code binds (imports, defs, assignments, loop and with targets)."
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import): out |= {a.asname or a.name.split('.')[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            for a in n.names:
                if a.name != '*': out.add(a.asname or a.name); continue
                try:
                    m = importlib.import_module(n.module)
                    out |= set(getattr(m, '__all__', None) or [k for k in vars(m) if not k.startswith('_')])
                except Exception: pass
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)): out.add(n.id)
        elif isinstance(n, ast.arg): out.add(n.arg)
        elif isinstance(n, ast.ExceptHandler) and n.name: out.add(n.name)
    return out


def nbdev_docs_failures(path) -> list:
    """`nbdev_docs` runs only the cells `show_doc` needs (exported cells, cells with an import, `show_doc` cells): a cell
    that mixes an import with code needing a name from a skipped cell fails the whole Quarto site. ['cell N: names']"""
    from nbdev.process import NBProcessor
    has = lambda trees, types: any(isinstance(n, types) for t in trees for n in ast.walk(t))
    run, mixed = [], []
    for i, c in enumerate(NBProcessor(Path(path)).nb.cells):
        if c.cell_type != 'code' or not c.source or 'nbdev_export' + '(' in c.source: continue
        if c.directives_.get('eval:', [''])[0].lower() == 'false': continue
        try: trees = ast.parse(c.source).body
        except SyntaxError: continue
        imports = has(trees, (ast.Import, ast.ImportFrom))
        showdoc = any(isinstance(t, ast.Expr) and isinstance(t.value, ast.Call) and getattr(t.value.func, 'id', '') == 'show_doc'
                      for t in trees)
        if c.directives_.keys() & _SHOW_DIRS or imports or showdoc:
            run.append(trees)
            if imports and has(trees, (ast.Expr, ast.Assign)) and not c.directives_.keys() & _SHOW_DIRS: mixed.append((i, trees))
    known = set(dir(builtins)) | {'show_doc', 'get_ipython', '__file__'}
    for trees in run:
        for t in trees: known |= _bound(t)
    loaded = lambda t: {n.id for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [f'cell {i}: {", ".join(sorted(m))}' for i, trees in mixed if (m := set().union(*map(loaded, trees)) - known)]


def test_notebooks_work_with_nbdev_docs():
    bad = [f'{f.relative_to(ROOT)} {c}' for f in sorted((ROOT/'nbs').rglob('*.ipynb'))
           if '.ipynb_checkpoints' not in f.parts for c in nbdev_docs_failures(f)]
    assert not bad, ('cells (0-based) that mix an import with code using names from cells nbdev_docs does not run; '
                     'move the import into an import cell of its own:\n  ' + '\n  '.join(bad))


# ---- in Chromium ----

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage']


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@contextmanager
def serve(directory:Path):
    "Serve `directory` on 127.0.0.1, on a free port, for the block; yields the base URL; stops the server after."
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(directory)))
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    try: yield f'http://127.0.0.1:{srv.server_address[1]}/'
    finally: srv.shutdown(); srv.server_close(); t.join(10)


_JS_INSPECT = r"""() => {
  const vis = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
                        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const art = document.querySelector('article');
  const text = [];
  const walk = document.createTreeWalker(art, NodeFilter.SHOW_TEXT, {acceptNode: (n) =>
      n.parentElement.closest('pre, code, .katex, script, style') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  while (walk.nextNode()) text.push(walk.currentNode.nodeValue);
  const raw = [...text.join(' ').matchAll(/\$\$[^$]{0,60}|\\\[[^\]]{0,60}|\\\([^)]{0,40}|\\begin\{[a-z]+\}/g)].map(m => m[0]);
  const wide = [...art.querySelectorAll('pre, table, .md-typeset__scrollwrap, .nb-html')].filter(vis)
      .filter(e => e.scrollWidth > e.clientWidth + 2)        // would scroll sideways: does not fit the column
      .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 60));
  return {katex: [...art.querySelectorAll('.katex')].filter(vis).length, katexErrors: art.querySelectorAll('.katex-error').length,
          raw: raw, wide: wide, tables: [...art.querySelectorAll('table')].filter(vis).length,
          images: [...art.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0,
                                                            visible: vis(i), width: i.naturalWidth})),
          copy: art.querySelectorAll('pre button.md-code__button[data-md-type=copy]').length, pre: art.querySelectorAll('pre > code').length,
          prev: (document.querySelector('a.md-footer__link--prev') || {}).textContent,
          next: (document.querySelector('a.md-footer__link--next') || {}).textContent, title: document.title};
}"""


@pytest.fixture(scope='module')
def browser(site):
    need(browser_missing())
    from playwright.sync_api import sync_playwright
    shots = Path(os.environ.get('DOCS_SCREENSHOTS') or site/'_screenshots'); shots.mkdir(parents=True, exist_ok=True)
    with serve(site) as base, sync_playwright() as pw:
        # every request not to 127.0.0.1 goes to a proxy that is not there (it fails) and is recorded
        b = pw.chromium.launch(executable_path=shutil.which('chromium'), args=CHROMIUM_ARGS, headless=True,
                               proxy={'server': 'http://127.0.0.1:9', 'bypass': '127.0.0.1'})
        log = {'outside': [], 'errors': [], 'failed': []}

        def open_page(href, width=1400, height=900):
            ctx = b.new_context(viewport={'width': width, 'height': height}, service_workers='block')
            ctx.on('request', lambda r: urlsplit(r.url).scheme in ('http', 'https', 'ws', 'wss')
                   and urlsplit(r.url).hostname != '127.0.0.1' and log['outside'].append(r.url))
            page = ctx.new_page()
            page.on('console', lambda m: m.type == 'error' and log['errors'].append(f'{href}: {m.text}'))
            page.on('pageerror', lambda e: log['errors'].append(f'{href}: uncaught {e}'))
            page.on('requestfailed', lambda r: urlsplit(r.url).hostname == '127.0.0.1' and log['failed'].append(f'{r.url} ({r.failure})'))
            page.on('response', lambda r: r.status >= 400 and log['failed'].append(f'{r.url} (HTTP {r.status})'))
            page.goto(base + href, wait_until='networkidle')
            page.wait_for_selector('body[data-math=done]', state='attached', timeout=30_000)   # KaTeX has run
            page.evaluate('document.fonts.ready.then(() => true)')
            return page
        try: yield {'base': base, 'open': open_page, 'log': log, 'shots': shots}
        finally: b.close()
    print(f'\nscreenshots of the docs pages: {shots}')


@pytest.fixture(scope='module')
def reports(browser):
    out = {}
    for p in pages():
        page = browser['open'](p.href)
        out[p.href] = page.evaluate(_JS_INSPECT)
        shot = browser['shots']/(p.href.replace('/', '__')[:-5] + '.png')
        page.screenshot(path=str(shot), full_page=True)
        out[p.href]['shot'] = shot
        page.context.close()
    return out


def test_pages_in_chromium(browser, reports):
    log = browser['log']
    assert not log['outside'], f'requests leaving the machine: {log["outside"][:10]}'
    assert not log['errors'], log['errors'][:10]
    assert not log['failed'], log['failed'][:10]
    for href, r in reports.items():
        assert not r['raw'] and not r['katexErrors'], (href, r['raw'][:5])
        assert all(i['loaded'] for i in r['images']), (href, r['images'])
        assert not r['wide'], (href, 'wider than the column', r['wide'][:5])
        assert r['copy'] == r['pre'] > 0, (href, 'a copy button on every code block')
        assert r['shot'].stat().st_size > 10_000, href
        if r['prev'] and r['next']:                               # two links, each with its own words
            assert re.search(r'Previous\s+\S', r['prev']) and re.search(r'Next\s+\S', r['next']), href


def test_loss_page_math_and_tables(reports):
    r = reports[LOSS_PAGE]
    assert r['katex'] >= len(_markdown_math(LOSS_NB)) and r['tables'] >= 2
    assert reports['index.html']['title'].startswith('softsil_nb')


def test_results_table_and_figures_visible(reports):
    assert reports['tutorials/pytorch_loop.html']['tables'] >= 2       # before/after results, and the weight sweep
    vis = reports['tutorials/visualising.html']
    assert sum(i['loaded'] and i['visible'] for i in vis['images']) == len(vis['images']) >= 5
    assert all(i['width'] >= 300 for i in vis['images'])             # real figures, not icons


def test_search_finds_and_follows(browser):
    page = browser['open']('index.html')
    page.keyboard.press('/')                                  # Material's search shortcut
    page.keyboard.type('CombinedLoss', delay=30)              # as a reader types (the search listens to keys)
    first = page.wait_for_selector('.md-search-result__item a', timeout=20_000)
    page.screenshot(path=str(browser['shots']/'search.png'))
    assert 'CombinedLoss' in page.inner_text('.md-search-result')
    first.click()
    page.wait_for_load_state('networkidle')
    assert urlsplit(page.url).path.endswith('/' + LOSS_PAGE), page.url     # Material adds ?h=<query> to highlight it
    assert 'CombinedLoss' in page.inner_text('article')
    page.context.close()


def test_source_link_in_chromium(browser):
    page = browser['open'](LOSS_PAGE)
    a = page.locator('#combinedloss ~ p a.api-source, #combinedloss + p a.api-source').first
    assert a.is_visible()
    assert re.fullmatch(rf'{re.escape(GIT_URL)}/blob/{CFG["branch"]}/softsil_nb/losses\.py#L\d+', a.get_attribute('href'))
    page.context.close()
