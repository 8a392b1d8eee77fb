"The docs build: executed notebooks rendered as a static site with nbconvert (see tools/build_docs.py)."
