"""MkDocs hooks (mkdocs.yml `hooks:`): every notebook under nbs/ becomes a page, with no configuration.

`on_files` runs the notebooks (notebooks.py; cached ones are read, $DOCS_JOBS at once) and writes each as Markdown
with nbconvert (page.md.j2: outputs as results, figures as files) under the name nbdev gives it (`01_losses.ipynb` ->
`losses.html`, as `_modidx.py` links it); MkDocs' own navigation lists them in reading order. KaTeX and iframe-worker
(npm) are bundled, so the pages load nothing from outside. `on_post_build` writes build.json; a failed notebook (its
page shows the traceback) fails the build."""
import concurrent.futures as cf, json, multiprocessing as mp, os, posixpath, re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter
from nbconvert.filters import strip_ansi
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from docs.notebooks import CFG, HERE, ROOT, notebooks, page_notebook   # noqa: E402

NPM = HERE/'node_modules'
BUNDLE = ['katex/dist/katex.min.js', 'katex/dist/katex.min.css', 'katex/dist/contrib/auto-render.min.js',
          'katex/dist/fonts/*', 'katex/LICENSE', 'iframe-worker/shim/index.js', 'iframe-worker/LICENSE']
DOC_URL = CFG.doc_host.rstrip('/') + '/' + CFG.doc_baseurl.strip('/') + '/'
RESULTS = []


def html_name(nb:Path) -> str:
    "The page of a notebook, as nbdev names it: `nbs/tutorials/02_pytorch_loop.ipynb` -> `tutorials/pytorch_loop.html`."
    rel = nb.relative_to(CFG.nbs_path)
    return (rel.parent/re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.stem.lower())).as_posix() + '.html'


def scrub(text:str) -> str:
    "Text without the paths of the machine that built it: the venv is `<venv>`, the repository `.`, the home `~`."
    for path, short in ((sys.prefix, '<venv>'), (str(ROOT), '.'), (str(Path.home()), '~')): text = text.replace(path, short)
    return text


def result(text, cls='nb-output') -> str:
    "An output as a fenced block marked `cls`, as extra.css shows results."
    text = scrub(strip_ansi(text)).rstrip()
    fence = '`' * max([3] + [len(m) + 1 for m in re.findall(r'`{3,}', text)])
    return f'\n{fence}{{ .text .{cls} }}\n{text}\n{fence}\n'


def on_files(files, config):
    if not (NPM/'katex'/'dist'/'katex.min.js').exists() or not (NPM/'iframe-worker'/'shim'/'index.js').exists():
        raise PluginError('KaTeX or iframe-worker is missing: run `make docs` (or `npm ci --prefix tools/docs`; needs npm)')
    for pat in BUNDLE:
        for p in sorted(NPM.glob(pat)):
            rel = p.relative_to(NPM).as_posix()
            files.append(File(rel, str(NPM), config.site_dir, False, dest_uri='assets/' + rel))
    nbs, n = notebooks(), int(os.environ.get('DOCS_JOBS') or os.cpu_count() or 1)
    threads = str(max(1, (os.cpu_count() or 1) // n))
    if str(HERE.parent) not in sys.path: sys.path.insert(0, str(HERE.parent))   # MkDocs undoes ours: the workers import docs
    for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(v, threads)
    with cf.ProcessPoolExecutor(min(n, len(nbs)), mp_context=mp.get_context('spawn')) as ex:
        runs = list(ex.map(page_notebook, map(str, nbs[::-1])))[::-1]   # meets tests/test_notebooks.py halfway
    exporter = MarkdownExporter(template_file=str(HERE/'page.md.j2'))
    exporter.register_filter('result', result); exporter.register_filter('scrub', scrub)
    pages = {}
    RESULTS.clear()
    for nb, r in zip(nbs, runs):
        href = html_name(nb)
        if r['nb'] is None: md, res = f'# {nb.stem}\n\nThis notebook failed when the docs were built:\n{result(r["error"], "nb-error")}', {}
        else: md, res = exporter.from_notebook_node(nbformat.reads(json.dumps(r['nb']), 4),
                                                    resources={'output_files_dir': Path(href).stem + '_files'})
        up = '../' * href.count('/')
        pages[href] = md.lstrip().replace(DOC_URL, up), res.get('outputs', {}), nb
        RESULTS.append({'src': nb.relative_to(ROOT).as_posix(), 'href': href, 'error': r['error'],
                        'title': (r['nb'] or {}).get('metadata', {}).get('title') or nb.stem})
    ids = {h: set(re.findall(r'\{ #(\S+) \.api-name \}', md)) for h, (md, _, _) in pages.items()}
    srcs = {h: nb.relative_to(CFG.nbs_path).with_suffix('.md').as_posix() for h, (_, _, nb) in pages.items()}

    def link(m, here):   # a page by its name (nbdev's links) as MkDocs knows it, by its source; a link to a method's
        target, frag = posixpath.normpath(posixpath.join(posixpath.dirname(here), m[1])), m[2] or ''   # entry, which
        if target not in srcs: return m[0]                                 # only some pages show: else to its class's
        while '.' in frag and frag[1:] not in ids[target]: frag = frag.rsplit('.', 1)[0]
        return f']({posixpath.relpath(srcs[target], posixpath.dirname(srcs[here]))}{frag})'
    for href, (md, figs, nb) in pages.items():
        md = re.sub(r'\]\(([\w/.-]+\.html)(#[\w.-]+)?\)', lambda m: link(m, href), md)
        page = File.generated(config, srcs[href], content=md)
        page.dest_uri = href
        files.append(page)
        for name, data in figs.items(): files.append(File.generated(config, posixpath.join(posixpath.dirname(href), name), content=data))
    return files


def on_post_build(config):
    (Path(config.site_dir)/'build.json').write_text(json.dumps({'pages': RESULTS}, indent=1))
    failed = [r['src'] for r in RESULTS if r['error']]
    if failed: raise PluginError(f'notebooks that failed: {", ".join(failed)} (their pages show the tracebacks)')
