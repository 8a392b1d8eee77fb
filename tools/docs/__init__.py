"The docs build: what MkDocs (mkdocs.yml) cannot do -- execute the notebooks, show_doc tables, Markdown pages (see tools/build_docs.py)."
