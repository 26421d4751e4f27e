"""The command lines: serve, worker, transcribe (client), live (client), prepare-models, bench.

`app.__main__` dispatches to these; each imports what it runs only when it runs.
"""
