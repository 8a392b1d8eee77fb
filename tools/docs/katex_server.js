// Render TeX to HTML with KaTeX at build time: one JSON request per line on stdin
// ({"tex": "...", "display": true}), one JSON reply per line on stdout ({"html": "..."} or {"error": "..."}).
const katex = require('katex');
const readline = require('readline');
const rl = readline.createInterface({input: process.stdin, terminal: false});
rl.on('line', (line) => {
  let reply;
  try {
    const req = JSON.parse(line);
    reply = {html: katex.renderToString(req.tex, {displayMode: !!req.display, throwOnError: true, strict: 'ignore',
                                                  output: 'htmlAndMathml', trust: false})};
  } catch (e) {
    reply = {error: String(e && e.message || e)};
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
