"""API workflows for runs (screen 10) and starting the model check (screen 11)."""

from services import live, model_check, runs
from workflows.declare import api_workflow

LIST_RUNS = api_workflow(runs.list_runs)
LOAD_RUNS = api_workflow(runs.runs_by_ids)
LIST_SUBJECT_RUNS = api_workflow(runs.list_subject_runs)
LOAD_RUN_STEPS = api_workflow(runs.steps_by_run_ids)
LIST_RUN_EVENTS = api_workflow(runs.list_run_events)
LIST_ACTIVITY = api_workflow(runs.list_activity)
CANCEL_RUN = api_workflow(runs.cancel_run)
RETRY_RUN = api_workflow(runs.retry_run)
REQUIRE_RUN = api_workflow(runs.require_run)
REQUIRE_MEMBER = api_workflow(runs.require_member)
AUTHORIZE_MY_RUN_EVENTS = api_workflow(live.authorize_my_run_events)
MY_RUN_EVENTS_CURSOR = api_workflow(live.my_run_events_cursor)
START_MODEL_CHECK = api_workflow(model_check.start)
