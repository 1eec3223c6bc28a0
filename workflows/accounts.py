"""Workflows for accounts and workspaces (screens 1, 2 and 11)."""

from services import accounts, usage, workspace_settings, workspaces
from workflows.declare import api_workflow

SIGN_UP = api_workflow(accounts.sign_up)
SIGN_IN = api_workflow(accounts.sign_in)
REFRESH_TOKEN = api_workflow(accounts.refresh)
SIGN_OUT = api_workflow(accounts.sign_out)
LOAD_ME = api_workflow(accounts.get_me)
LOAD_USERS = api_workflow(accounts.users_by_ids)

LIST_MY_WORKSPACES = api_workflow(workspaces.list_my_workspaces)
LOAD_WORKSPACES = api_workflow(workspaces.workspaces_by_ids)
LOAD_WORKSPACE_COUNTS = api_workflow(workspaces.workspace_counts)
RENAME_WORKSPACE = api_workflow(workspaces.rename_workspace)
DELETE_WORKSPACE = api_workflow(workspaces.delete_workspace)
LIST_MEMBERS = api_workflow(workspaces.list_members)
LOAD_MEMBERS = api_workflow(workspaces.members_by_ids)
INVITE_MEMBER = api_workflow(workspaces.invite_member)
ACCEPT_INVITE = api_workflow(workspaces.accept_invite)
CHANGE_MEMBER_ROLE = api_workflow(workspaces.change_member_role)
REMOVE_MEMBER = api_workflow(workspaces.remove_member)
LOAD_MODELS = api_workflow(workspace_settings.models_in_use)
LOAD_USAGE = api_workflow(usage.workspace_usage)
SET_CHAT_MODEL = api_workflow(workspace_settings.set_chat_model)
LIST_INVITES = api_workflow(workspaces.list_invites)
LOAD_INVITES = api_workflow(workspaces.invites_by_ids)
REVOKE_INVITE = api_workflow(workspaces.revoke_invite)
