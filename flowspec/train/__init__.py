"""``flowspec train / eval / sample / plot``: fit a spec to data from the command line."""
