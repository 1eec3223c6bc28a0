"""API workflows for runs (screen 10) and the model check (screen 11)."""

from nodes import runs as n
from workflows.calls import call_workflow

LIST_RUNS = call_workflow("list_runs", n.ListRunsNode)
LOAD_RUNS = call_workflow("load_runs", n.LoadRunsNode)
LOAD_RUN_STEPS = call_workflow("load_run_steps", n.LoadRunStepsNode)
LIST_RUN_EVENTS = call_workflow("list_run_events", n.ListRunEventsNode)
CANCEL_RUN = call_workflow("cancel_run", n.CancelRunNode)
RETRY_RUN = call_workflow("retry_run", n.RetryRunNode)
REQUIRE_RUN = call_workflow("require_run", n.RequireRunNode)
REQUIRE_MEMBER = call_workflow("require_member", n.RequireMemberNode)
START_MODEL_CHECK = call_workflow("start_model_check", n.StartModelCheckNode)
