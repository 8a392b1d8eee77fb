"""The documentation site: every notebook executed and rendered (tools/build_docs.py), then read as HTML and opened in
headless Chromium. Needs node + KaTeX (`make docs` installs it), Debian's chromium and playwright (`make browser`)."""
import json, os, re, subprocess, sys, inspect
from pathlib import Path
from urllib.parse import urlsplit, unquote

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
from docs.katex import katex_missing            # noqa: E402
from docs.browser import browser_missing, check_pages   # noqa: E402
from docs.site import discover                  # noqa: E402

CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')
LOSS_PAGE, LOSS_NB = 'losses.html', ROOT/'nbs'/'01_losses.ipynb'


def need(why):
    "Skip with `why` (which says how to get what is missing), except on CI, where it is a failure."
    if why is None: return
    if CI: pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    need(katex_missing())
    out = tmp_path_factory.mktemp('docs')/'site'
    jobs = 1 if os.environ.get('PYTEST_XDIST_WORKER') else (os.cpu_count() or 1)   # under xdist another worker is busy
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--out', str(out), '--jobs', str(jobs), '--strict'],
                       cwd=ROOT, capture_output=True, text=True, timeout=3600)
    # a notebook that fails is reported by test_every_notebook_is_a_page; the other pages are still checked
    assert (out/'build.json').exists(), f'the docs build did not run:\n{r.stdout[-8000:]}\n{r.stderr[-4000:]}'
    return out


def soup(site, href): return BeautifulSoup((site/href).read_text(encoding='utf-8'), 'html.parser')


def test_every_notebook_is_a_page(site):
    built = json.loads((site/'build.json').read_text())
    bad = {p['src']: p['error'] or p['problems'] for p in built['pages'] if p['src'] in built['failed']}
    assert not bad, 'pages that failed to build:\n' + '\n'.join(f'{k}:\n{v if isinstance(v, str) else chr(10).join(v)}'[-3000:] for k, v in bad.items())
    pages = discover()
    nbs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/'nbs').rglob('*.ipynb')
                 if '.ipynb_checkpoints' not in p.parts and not p.name.startswith('_'))
    assert sorted(p.src for p in pages) == nbs
    for p in pages:
        page = soup(site, p.href)
        assert page.find('h1', class_='title').get_text(strip=True) == p.title, p.href
        nav = [a['href'] for a in page.select('nav.sidebar ul.nav a')]
        assert len(nav) == len(pages), p.href                     # every page links every page
        assert page.select_one('nav.sidebar a.active').get_text(strip=True) == p.title
    assert {'index.html', LOSS_PAGE, 'tutorials/pytorch_loop.html', 'tutorials/visualising.html'} <= {p.href for p in pages}


def _local_targets(site):
    "Every (page, tag, url) that loads or links something, for all pages."
    for f in sorted(site.rglob('*.html')):
        if '_screenshots' in f.parts: continue
        s = BeautifulSoup(f.read_text(encoding='utf-8'), 'html.parser')
        for tag, attr in (('a', 'href'), ('link', 'href'), ('img', 'src'), ('script', 'src'), ('iframe', 'src'), ('source', 'src')):
            for el in s.find_all(tag):
                if el.get(attr) is not None: yield f, s, tag, el[attr]


def test_pages_load_nothing_from_outside_and_no_link_is_broken(site):
    ids = {}
    for f, s, tag, url in _local_targets(site):
        u = urlsplit(url)
        if tag == 'a' and u.scheme in ('http', 'https', 'mailto'): continue      # links out are fine; loads are not
        assert u.scheme in ('', 'data'), f'{f.name}: <{tag}> loads {url} from outside the site'
        assert tag != 'script', f'{f.name}: the pages have no scripts'
        if u.scheme == 'data': continue
        target = (f.parent/unquote(u.path)).resolve() if u.path else f
        assert target.exists() and site.resolve() in target.parents, f'{f.name}: broken {tag} -> {url}'
        if u.fragment and target.suffix == '.html':
            if target not in ids: ids[target] = {e['id'] for e in BeautifulSoup(target.read_text(), 'html.parser').find_all(id=True)}
            assert u.fragment in ids[target], f'{f.name}: no #{u.fragment} in {target.name}'
    css = (site/'assets'/'katex'/'katex.min.css').read_text()
    for font in re.findall(r'url\((fonts/[^)]+)\)', css):
        assert (site/'assets'/'katex'/font).exists(), font                       # KaTeX's fonts travel with the site


def _markdown_math(nb:Path):
    "The TeX of every `$$...$$` and `$...$` in the notebook's markdown cells."
    out = []
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'markdown': continue
        src = ''.join(c['source'])
        src = re.sub(r'`[^`]*`', '', src)
        for m in re.finditer(r'\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$', src, re.DOTALL): out.append((m.group(1) or m.group(2)).strip())
    return out


def test_math_is_rendered_at_build_time(site):
    page = soup(site, LOSS_PAGE)
    tex = _markdown_math(LOSS_NB)
    assert tex, 'the loss notebook has formulas'
    rendered = {a.get_text().strip() for a in page.select('.katex annotation[encoding="application/x-tex"]')}
    missing = [t for t in tex if t not in rendered]
    assert not missing, f'formulas not rendered by KaTeX: {missing[:5]}'
    assert page.select('.katex-display'), 'display math is rendered as display math'
    text = ' '.join(t for t in page.find('main').find_all(string=True) if not t.find_parent(['code', 'pre', 'annotation']))
    assert '$$' not in text and not re.search(r'\$\\[a-zA-Z]', text), 'raw TeX left on the loss page'
    assert not page.select('.katex-error')


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


def test_figures_are_files_next_to_their_page(site):
    n = 0
    for f in site.rglob('*.html'):
        for img in BeautifulSoup(f.read_text(), 'html.parser').select('main img'):
            p = f.parent/img['src']
            assert p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' or p.suffix in ('.jpg', '.jpeg', '.svg'), p
            n += 1
    assert n >= 5, 'the tutorials alone draw five figures'


def test_notebooks_work_with_nbdev_docs():
    "nbdev_docs (Quarto) runs only import, export and show_doc cells; such a cell that needs a name from another cell fails it."
    from docs.nbdev_compat import nbdev_docs_failures
    bad = [f'{f.relative_to(ROOT)} {c}' for f in sorted((ROOT/'nbs').rglob('*.ipynb'))
           if '.ipynb_checkpoints' not in f.parts for c in nbdev_docs_failures(f)]
    assert not bad, ('cells (0-based) that mix an import with code using names from cells nbdev_docs does not run; '
                     'move the import into an import cell of its own:\n  ' + '\n  '.join(bad))


@pytest.fixture(scope='module')
def browser_reports(site):
    need(browser_missing())
    shots = Path(os.environ.get('DOCS_SCREENSHOTS') or site/'_screenshots')
    hrefs = [p.href for p in discover()]
    reports = {r.href: r for r in check_pages(site, hrefs, shots=shots)}
    print(f'\nscreenshots of the docs pages: {shots}')
    return reports


def test_pages_in_chromium(browser_reports):
    problems = {h: r.problems for h, r in browser_reports.items() if r.problems}
    assert not problems, json.dumps(problems, indent=1)[:6000]
    for h, r in browser_reports.items():
        p = Path(r.screenshot)
        assert p.exists() and p.stat().st_size > 10_000, f'no screenshot of {h}'


def test_loss_page_shows_math_and_tables(browser_reports):
    r = browser_reports[LOSS_PAGE]
    assert r.katex >= len(_markdown_math(LOSS_NB)) and not r.raw_math
    assert r.tables_visible >= 2                                  # the API tables
    idx = browser_reports['index.html']
    assert not idx.problems and idx.title.startswith('softsil_nb')


def test_results_table_and_figures_visible(browser_reports):
    loop = browser_reports['tutorials/pytorch_loop.html']
    assert loop.tables_visible >= 2                               # before/after results, and the weight sweep
    vis = browser_reports['tutorials/visualising.html']
    assert vis.images_visible == len(vis.images) >= 5
    assert all(i['width'] >= 300 for i in vis.images)             # real figures, not icons
