"The docs build: MkDocs hooks (hooks.py) and the notebooks run for their pages (notebooks.py); see the README's Development section."
