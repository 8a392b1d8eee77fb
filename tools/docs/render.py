"""Render one processed notebook (an nbformat-4 dict from `execute.to_nbformat`) to a page of the site with nbconvert.

The `softsil` template (templates/softsil) draws the page: sidebar, title, cells, outputs; figures are written
next to the page; math goes through KaTeX at build time; no page refers to anything outside the site.
"""
from __future__ import annotations
import html, json, re
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup
from jinja2 import pass_context
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import ExtractOutputPreprocessor

TEMPLATES = Path(__file__).resolve().parent/'templates'
_re_quarto = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_math_delims = re.compile(r'^\s*(\$\$|\$|\\\[|\\\()(.*?)(\$\$|\$|\\\]|\\\))\s*$', re.DOTALL)


class KatexRenderer(IPythonRenderer):
    "nbconvert's markdown renderer, with math turned into KaTeX HTML instead of `$...$` left for MathJax."
    def __init__(self, katex, **kwargs):
        super().__init__(**kwargs)
        self.katex = katex

    def block_math(self, body:str) -> str: return self.katex.render(body, display=True)
    def inline_math(self, body:str) -> str: return self.katex.render(body, display=False)
    def latex_environment(self, name:str, body:str) -> str:
        return self.katex.render(f'\\begin{{{name}}}{body}\\end{{{name}}}', display=True)


class SiteExporter(HTMLExporter):
    "HTML exporter for the site: the `softsil` template, KaTeX math, figures extracted to files."
    def __init__(self, katex, **kwargs):
        self.katex = katex
        super().__init__(template_name='softsil', extra_template_basedirs=[str(TEMPLATES)],
                         exclude_anchor_links=False, anchor_link_text='¶', **kwargs)
        self.register_preprocessor(ExtractOutputPreprocessor(), enabled=True)

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get('cell', {})
        renderer = KatexRenderer(self.katex, escape=False, attachments=cell.get('attachments', {}),
                                 embed_images=False, anchor_link_text=self.anchor_link_text,
                                 exclude_anchor_links=self.exclude_anchor_links)
        return MarkdownWithMath(renderer=renderer).render(source)

    def katex_latex(self, source:str) -> str:
        "Render a `text/latex` output (`$$...$$`, `$...$`, `\\[...\\]` or bare TeX) as display math."
        m = _re_math_delims.match(source)
        return self.katex.render(m.group(2) if m else source, display=True)

    def default_filters(self):
        yield from super().default_filters()
        yield ('markdown2html', self.markdown2html)
        yield ('katex_latex', self.katex_latex)


def prepare(nbdict:dict) -> nbformat.NotebookNode:
    "Apply the Quarto cell options nbdev leaves in the source (echo, output, include, code-fold) and strip them."
    nb = nbformat.reads(json.dumps(nbdict), as_version=4)        # also joins multi-line strings
    cells = []
    for cell in nb.cells:
        if cell.cell_type != 'code':
            cells.append(cell); continue
        lines, opts = cell.source.splitlines(), {}
        while lines and (m := _re_quarto.match(lines[0])):
            opts[m.group(1)] = m.group(2).strip('"\'')
            lines.pop(0)
        cell.source = '\n'.join(lines).strip('\n')
        if opts.get('include') == 'false': continue
        docs = cell.metadata.setdefault('docs', {})
        if opts.get('echo') == 'false' or not cell.source.strip():
            cell.metadata['transient'] = {'remove_source': True}
        if opts.get('output') == 'false': cell.outputs = []
        if opts.get('code-fold') in ('true', 'show'):
            docs['fold'] = opts.get('code-summary', 'Code')
            docs['fold_open'] = opts['code-fold'] == 'show'
        if cell.metadata.get('transient', {}).get('remove_source') and not cell.outputs: continue
        cells.append(cell)
    nb.cells = cells
    return nb


def _slug(s:str) -> str: return re.sub(r'[^\w.-]+', '-', s.strip()).strip('-').lower() or 'section'


def _html_name(name:str) -> str:
    "Page name of a notebook, as nbdev and Quarto name it (lower case, numeric prefix dropped)."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', name.lower()).rsplit('.', 1)[0] + '.html'


def postprocess(page:str, *, root:str, doc_url:str) -> tuple[str, list[str]]:
    "Anchors for the API entries, relative links, the page's table of contents; returns (html, problems)."
    soup = BeautifulSoup(page, 'html.parser')
    problems, seen = [], set()
    main = soup.find('main')
    for h in main.find_all(['h2', 'h3', 'h4']):
        a = h.find('a', class_='anchor-link')
        text = h.get_text(' ', strip=True).rstrip('¶').strip()
        in_api = h.find_parent('div', class_='showdoc') is not None
        hid = text.lower() if in_api else (h.get('id') or _slug(text))       # API anchors as nbdev's _modidx has them
        base, i = hid, 1
        while hid in seen: i += 1; hid = f'{base}-{i}'
        seen.add(hid); h['id'] = hid
        if a is not None: a['href'] = '#' + hid; a['aria-label'] = f'Link to {text}'
        if in_api: h['class'] = h.get('class', []) + ['api-name']
    # links: the project's own doc_host (nbdev's add_links) and .ipynb links become relative links
    for a in soup.find_all('a', href=True):
        href = a['href']
        if doc_url and href.startswith(doc_url): href = root + href[len(doc_url):]
        m = re.match(r'^(?![a-z]+:|/|#)(.*?)([^/]+)\.ipynb(#.*)?$', href)
        if m: href = m.group(1) + _html_name(m.group(2) + '.ipynb') + (m.group(3) or '')
        a['href'] = href
        if re.match(r'^https?://', href): a['rel'] = 'noopener'
    # nothing may be loaded from outside the site
    for tag, attr in (('script', 'src'), ('link', 'href'), ('img', 'src'), ('iframe', 'src'), ('source', 'src'),
                      ('video', 'src'), ('audio', 'src'), ('embed', 'src'), ('object', 'data')):
        for el in soup.find_all(tag):
            v = el.get(attr, '')
            if re.match(r'^(https?:)?//', v): problems.append(f'<{tag} {attr}="{v}"> loads from outside the site')
    for el in soup.find_all('script'):
        problems.append('a <script> on the page (the site has no scripts)')
    for el in soup.select('.katex-error'):
        problems.append(f'math KaTeX could not render: {el.get_text()[:80]!r} ({el.get("title", "")[:120]})')
    # table of contents: the ## sections, and the API entries under them
    toc = soup.find('aside', class_='toc')
    items = []
    for h in main.find_all(['h2', 'h3']):
        if h.name == 'h3' and 'api-name' not in h.get('class', []): continue
        text = h.get_text(' ', strip=True).rstrip('¶').strip()
        cls = 'toc-api' if h.name == 'h3' else 'toc-section'
        items.append(f'<li class="{cls}"><a href="#{html.escape(h["id"])}">{html.escape(text)}</a></li>')
    if items and toc is not None:
        toc.append(BeautifulSoup(f'<p class="toc-title">On this page</p><ul>{"".join(items)}</ul>', 'html.parser'))
    elif toc is not None: toc.decompose()
    return str(soup), problems


def render_page(nbdict:dict, *, katex, out_html:Path, site:dict, doc_url:str) -> list[str]:
    "Write the page for `nbdict` to `out_html` (figures in `<name>_files/` beside it); returns the problems found."
    nb = prepare(nbdict)
    stem = out_html.stem
    if site.get('description'):
        r = KatexRenderer(katex, escape=True, exclude_anchor_links=True)
        d = MarkdownWithMath(renderer=r).render(site['description']).strip()
        site = dict(site, description_html=re.sub(r'^<p>(.*)</p>$', r'\1', d, flags=re.DOTALL))
    resources = {'site': site, 'output_files_dir': f'{stem}_files', 'unique_key': 'fig',
                 'metadata': {'name': stem, 'path': str(out_html.parent)}}
    exporter = SiteExporter(katex)
    body, res = exporter.from_notebook_node(nb, resources=resources)
    page, problems = postprocess(body, root=site['root'], doc_url=doc_url)
    problems += [f'math: {e}' for e in katex.errors]
    out_html.parent.mkdir(parents=True, exist_ok=True)
    for name, data in res.get('outputs', {}).items():
        p = out_html.parent/name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    out_html.write_text(page, encoding='utf-8')
    return problems


def error_page(*, out_html:Path, site:dict, message:str):
    "A page that shows why a notebook could not be built (the site keeps its navigation)."
    from .site import page_shell
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(page_shell(site, f'<div class="build-error"><p>This notebook failed when the docs were built:</p>'
                                         f'<pre class="output error">{html.escape(message)}</pre></div>'), encoding='utf-8')
