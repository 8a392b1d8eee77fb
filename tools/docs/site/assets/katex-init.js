// Math: KaTeX (bundled in assets/katex, no CDN) renders what pymdownx.arithmatex marked, on each page load;
// body[data-math=done] then says so (tests/test_docs.py waits for it).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [{left: "\\(", right: "\\)", display: false}, {left: "\\[", right: "\\]", display: true}],
    throwOnError: false,
  })
  body.dataset.math = "done"
})
