"""Plain values and the grammars of setting strings, below every other folder of the core.

Standard library only, no I/O: the retention policy and bandwidth grammars, the
directory entries a store answers with, and the names of files being written
(`<file>.<attempt>.partial`). They were in `plan/` and `remote/`, but layers
below those folders need them: `settings` validates with the grammars, the
plain models and `archive.names` read entries and partial names. A folder of
its own keeps folder = layer.
"""
