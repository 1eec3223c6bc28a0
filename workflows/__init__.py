"""Workflow declarations: each service function the API calls, and each kind of run.

Callers import the declared object (`from workflows.runs import LIST_RUNS`); the worker and the
API's executor find run workflows by the name stored on a run, in `RUN_WORKFLOWS`.
"""

from workflows import accounts, chat, check_models, documents, ingestion, runs
from workflows.declare import API_WORKFLOWS, RUN_WORKFLOWS

__all__ = [
    "API_WORKFLOWS",
    "RUN_WORKFLOWS",
    "accounts",
    "chat",
    "check_models",
    "documents",
    "ingestion",
    "runs",
]
