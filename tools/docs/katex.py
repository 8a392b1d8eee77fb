"""Math rendered at build time by KaTeX (npm package `katex`, run by node): the pages carry HTML and MathML, no JS.

`make docs` installs KaTeX with `npm ci --prefix tools/docs` (pinned in tools/docs/package.json and
package-lock.json) into tools/docs/node_modules/, which is not committed.
"""
from __future__ import annotations
import html, json, shutil, subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE/'node_modules'
KATEX_DIST = NODE_MODULES/'katex'/'dist'
SERVER = HERE/'katex_server.js'
INSTALL_HINT = ('KaTeX is missing: run `make docs` (or `npm ci --prefix tools/docs`; needs node and npm, '
                'e.g. `apt-get install nodejs npm`)')


def katex_missing() -> str | None:
    "Why KaTeX cannot run here (None when it can)."
    if not shutil.which('node'): return 'node is not on PATH. ' + INSTALL_HINT
    if not (KATEX_DIST/'katex.js').exists(): return INSTALL_HINT
    return None


class Katex:
    "A node process rendering TeX to HTML, one request per line; failures are recorded in `errors`."
    def __init__(self):
        self.proc, self.errors, self._memo = None, [], {}

    def _start(self):
        why = katex_missing()
        if why: raise RuntimeError(why)
        self.proc = subprocess.Popen(['node', str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, encoding='utf-8', bufsize=1, cwd=HERE)

    def render(self, tex:str, display:bool=False) -> str:
        key = (tex, display)
        if key in self._memo: return self._memo[key]
        if self.proc is None: self._start()
        self.proc.stdin.write(json.dumps({'tex': tex, 'display': display}) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line: raise RuntimeError('the KaTeX node process stopped')
        reply = json.loads(line)
        if 'error' in reply:
            self.errors.append(f'{reply["error"]} in: {tex.strip()[:120]}')
            delim = '$$' if display else '$'
            out = f'<code class="katex-error" title="{html.escape(reply["error"])}">{html.escape(delim + tex + delim)}</code>'
        else: out = reply['html']
        self._memo[key] = out
        return out

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
            self.proc = None


def copy_assets(dest:Path):
    "Copy KaTeX's stylesheet and fonts (all the pages need to show the math) into `dest`."
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(KATEX_DIST/'katex.min.css', dest/'katex.min.css')
    shutil.copytree(KATEX_DIST/'fonts', dest/'fonts', dirs_exist_ok=True)
    lic = NODE_MODULES/'katex'/'LICENSE'
    if lic.exists(): shutil.copy2(lic, dest/'LICENSE')
