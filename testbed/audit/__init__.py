"""``invoke audit``: verify a submitted run (files, image, code), re-run it and give a verdict.

docs/audit.md describes the checks, the tolerances and the verdict document.
"""
