"""Foundations every stage reads: source spans, the "did you mean" name resolver, and
diagnostics with the one code registry (``CODES``) and its renderers."""
