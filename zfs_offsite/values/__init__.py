"""Plain values and the grammars of setting strings, below every other folder of the core.

Standard library only, no I/O: the retention policy and bandwidth grammars that
`settings` validates with, the directory entries a store answers with, and the
names of files being written (`<file>.<attempt>.partial`). They live here, not in
`plan/` or `remote/`, because `settings` (which sits below those folders) needs them.
"""
