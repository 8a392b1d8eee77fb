// Math: KaTeX (bundled in assets/katex, no CDN) renders what pymdownx.arithmatex marked, on each page load.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [{left: "\\(", right: "\\)", display: false}, {left: "\\[", right: "\\]", display: true}],
    throwOnError: false,
  })
})
