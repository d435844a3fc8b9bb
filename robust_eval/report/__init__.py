"""Reports: the typed suite results, the result JSON, the Markdown report and its plots, and the
comparison of several results."""
