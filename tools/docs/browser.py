"""Open the built site in headless Chromium (Debian's `chromium`, driven by Playwright) and report what a reader sees.

For each page: console errors, failed requests, requests to any host but 127.0.0.1 (aborted), math rendered by
KaTeX (and no raw `$$` left), visible tables, images loaded and visible; a full-page screenshot is saved.
"""
from __future__ import annotations
import functools, http.server, json, os, shutil, threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
                 '--disable-dev-shm-usage']
HOW_TO_GET = ("needs Debian's chromium and the playwright Python package: `make browser` "
              "(as root: apt-get install -y chromium; pip install playwright -- Playwright's own browser download "
              "is not used)")


def find_chromium() -> str | None:
    for c in (os.environ.get('CHROMIUM'), shutil.which('chromium'), '/usr/bin/chromium', shutil.which('chromium-browser')):
        if c and Path(c).exists(): return c
    return None


def browser_missing() -> str | None:
    "Why the browser check cannot run here (None when it can)."
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return 'the playwright package is not installed; ' + HOW_TO_GET
    if not find_chromium(): return 'chromium is not installed; ' + HOW_TO_GET
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@contextmanager
def serve(directory:Path):
    "Serve `directory` on 127.0.0.1 (a free port) for the duration of the block; yields the base URL."
    handler = functools.partial(_QuietHandler, directory=str(directory))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try: yield f'http://127.0.0.1:{srv.server_address[1]}/'
    finally:
        srv.shutdown(); srv.server_close()


@dataclass
class PageReport:
    href: str
    console_errors: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)
    external_requests: list = field(default_factory=list)
    katex: int = 0                  # rendered formulas
    katex_errors: int = 0
    raw_math: list = field(default_factory=list)   # `$$` or `\[` left as text outside code
    tables_visible: int = 0
    images: list = field(default_factory=list)     # [{src, loaded, visible, width, height}]
    screenshot: str = ''
    title: str = ''

    @property
    def images_visible(self): return sum(1 for i in self.images if i['loaded'] and i['visible'])

    @property
    def problems(self) -> list[str]:
        p = [f'console error: {e}' for e in self.console_errors]
        p += [f'failed request: {r}' for r in self.failed_requests]
        p += [f'request outside 127.0.0.1: {r}' for r in self.external_requests]
        p += [f'raw math left on the page: {t!r}' for t in self.raw_math]
        if self.katex_errors: p.append(f'{self.katex_errors} formulas KaTeX could not render')
        p += [f'image not loaded: {i["src"]}' for i in self.images if not i['loaded']]
        return p


_JS_INSPECT = r"""() => {
  const vis = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
                        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const text = [];
  const walk = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => n.parentElement.closest('pre, code, .katex, script, style') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  while (walk.nextNode()) text.push(walk.currentNode.nodeValue);
  const all = text.join(' ');
  const raw = [];
  for (const m of all.matchAll(/\$\$[^$]{0,60}|\\\[[^\]]{0,60}|\\begin\{[a-z]+\}/g)) raw.push(m[0]);
  return {
    katex: [...document.querySelectorAll('.katex')].filter(vis).length,
    katexErrors: document.querySelectorAll('.katex-error').length,
    raw: raw,
    tables: [...document.querySelectorAll('main table')].filter(vis).length,
    images: [...document.querySelectorAll('main img')].map(i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0,
                                                                visible: vis(i), width: i.naturalWidth, height: i.naturalHeight})),
    title: document.title,
  };
}"""


def check_pages(site_dir:Path, hrefs:list[str], shots:Path|None=None, width:int=1400, height:int=900) -> list[PageReport]:
    "Load each page of `site_dir` (paths relative to it) from a local server in headless Chromium."
    from playwright.sync_api import sync_playwright
    why = browser_missing()
    if why: raise RuntimeError(why)
    if shots: Path(shots).mkdir(parents=True, exist_ok=True)
    reports = []
    with serve(Path(site_dir)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            for href in hrefs:
                rep = PageReport(href)
                ctx = browser.new_context(viewport={'width': width, 'height': height}, service_workers='block')
                def route(route, request, rep=rep):       # Playwright calls it with (route, request)
                    u = urlsplit(request.url)
                    if u.scheme in ('http', 'https', 'ws', 'wss') and u.hostname != '127.0.0.1':
                        rep.external_requests.append(request.url); route.abort()
                    else: route.continue_()
                ctx.route('**/*', route)
                page = ctx.new_page()
                page.on('console', lambda m, rep=rep: m.type == 'error' and rep.console_errors.append(m.text))
                page.on('pageerror', lambda e, rep=rep: rep.console_errors.append(f'uncaught: {e}'))
                page.on('requestfailed', lambda r, rep=rep: rep.failed_requests.append(f'{r.url} ({r.failure})'))
                page.on('response', lambda r, rep=rep: r.status >= 400 and rep.failed_requests.append(f'{r.url} (HTTP {r.status})'))
                page.goto(base + href, wait_until='networkidle')
                page.evaluate('document.fonts.ready.then(() => true)')
                info = page.evaluate(_JS_INSPECT)
                rep.katex, rep.katex_errors, rep.raw_math = info['katex'], info['katexErrors'], info['raw']
                rep.tables_visible, rep.images, rep.title = info['tables'], info['images'], info['title']
                if shots:
                    p = Path(shots)/(href.replace('/', '__').rsplit('.', 1)[0] + '.png')
                    page.screenshot(path=str(p), full_page=True)
                    rep.screenshot = str(p)
                ctx.close()
                reports.append(rep)
        finally:
            browser.close()
    return reports


def site_pages(site_dir:Path) -> list[str]:
    "The pages the build wrote (from build.json), in reading order."
    d = json.loads((Path(site_dir)/'build.json').read_text())
    return [p['href'] for p in d['pages_list']]


def check_site(site_dir:Path, shots:Path|None=None) -> list[PageReport]:
    return check_pages(site_dir, site_pages(site_dir), shots=shots)


def format_reports(reports:list[PageReport]) -> str:
    lines = []
    for r in reports:
        imgs = f'{r.images_visible}/{len(r.images)} images'
        lines.append(f'{"ok  " if not r.problems else "FAIL"} {r.href:40s} {r.katex:4d} formulas  {r.tables_visible:3d} tables  {imgs}'
                     + (f'  screenshot {r.screenshot}' if r.screenshot else ''))
        lines += [f'       {p}' for p in r.problems]
    return '\n'.join(lines)
