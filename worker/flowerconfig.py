"""Flower's settings for hygge; `hygge flower` passes this file as --conf (see
worker/flower_view.py). An environment variable or a command-line option still wins."""

import os

from worker.flower_view import TASKS_COLUMNS, format_task

tasks_columns = os.environ.get("FLOWER_TASKS_COLUMNS") or TASKS_COLUMNS
__all__ = ["format_task", "tasks_columns"]
