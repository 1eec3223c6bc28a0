"""Nodes for the runs screens (screen 10) and starting the model check (screen 11)."""

from app.services import model_check, runs
from nodes.services import service_node

ListRunsNode = service_node(runs.list_runs, "ListRunsNode")
LoadRunsNode = service_node(runs.runs_by_ids, "LoadRunsNode")
LoadRunStepsNode = service_node(runs.steps_by_run_ids, "LoadRunStepsNode")
ListRunEventsNode = service_node(runs.list_run_events, "ListRunEventsNode")
CancelRunNode = service_node(runs.cancel_run, "CancelRunNode")
RetryRunNode = service_node(runs.retry_run, "RetryRunNode")
RequireRunNode = service_node(runs.require_run, "RequireRunNode")
RequireMemberNode = service_node(runs.require_member, "RequireMemberNode")
StartModelCheckNode = service_node(model_check.start, "StartModelCheckNode")
