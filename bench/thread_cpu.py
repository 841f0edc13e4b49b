"""Per-thread CPU of ours in a timed child (`--threads`): which thread spends it.

The child's CPU figure is the process's; this splits it by thread, from
`time.thread_time()` as each thread ends, or the clock of a thread still alive
(an executor's idle worker) at the end, and the main thread's own clock. Two
threads of one name are told apart by the order they started in (`name #2`).
Code pasted into the child around the timed restore, so a `--baseline` tree is
measured the same way without anything of its own.
"""

from __future__ import annotations

SETUP = """
import threading as _threads, time as _time
_cpu_by_thread, _started = {}, {}
_run = _threads.Thread.run
def _counted_run(self):
    _started[self.name] = _started.get(self.name, 0) + 1
    key = self.name + (f" #{_started[self.name]}" if _started[self.name] > 1 else "")
    self._cpu_key = key
    try:
        _run(self)
    finally:
        _cpu_by_thread[key] = _time.thread_time()
_threads.Thread.run = _counted_run
"""
START = "_main_cpu = _time.thread_time()"
# A dict of thread name -> CPU seconds, main thread included, as the expression `_thread_cpu()`.
COLLECT = """
def _thread_cpu():
    found = dict(_cpu_by_thread)
    found["main"] = _time.thread_time() - _main_cpu
    for alive in _threads.enumerate():
        key = getattr(alive, "_cpu_key", None)
        if key and key not in found and alive.ident is not None:
            clock = _time.pthread_getcpuclockid(alive.ident)
            found[key] = _time.clock_gettime(clock)
    return found
"""
