"""A task has one name: the runs the UI lists (`upload-alice`) are named after the task."""

from __future__ import annotations

import importlib
import pkgutil

from prefect import Task

import tasks


def every_task() -> list[Task[..., object]]:
    found: list[Task[..., object]] = []
    for info in pkgutil.iter_modules(tasks.__path__):
        module = importlib.import_module(f"tasks.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, Task)]
    return found


def test_each_task_is_named_as_its_runs_are() -> None:
    """Searching the task's name finds its runs: `upload-member` for `upload-<member>`."""
    found = every_task()
    assert len(found) >= 10
    mismatched = []
    for task in found:
        template = task.task_run_name
        stem = template.split("{")[0].rstrip("-") if isinstance(template, str) else task.name
        if not task.name.startswith(stem):
            mismatched.append(f"{task.name} runs as {template}")
    assert mismatched == []
