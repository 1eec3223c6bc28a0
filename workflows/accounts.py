"""Workflows for accounts and workspaces (screens 1, 2 and 11)."""

from nodes import accounts as n
from workflows.calls import call_workflow

SIGN_UP = call_workflow("sign_up", n.SignUpNode)
SIGN_IN = call_workflow("sign_in", n.SignInNode)
REFRESH_TOKEN = call_workflow("refresh_token", n.RefreshTokenNode)
SIGN_OUT = call_workflow("sign_out", n.SignOutNode)
LOAD_ME = call_workflow("load_me", n.LoadMeNode)
LOAD_USERS = call_workflow("load_users", n.LoadUsersNode)
LIST_MY_WORKSPACES = call_workflow("list_my_workspaces", n.ListMyWorkspacesNode)
LOAD_WORKSPACES = call_workflow("load_workspaces", n.LoadWorkspacesNode)
RENAME_WORKSPACE = call_workflow("rename_workspace", n.RenameWorkspaceNode)
LIST_MEMBERS = call_workflow("list_members", n.ListMembersNode)
LOAD_MEMBERS = call_workflow("load_members", n.LoadMembersNode)
INVITE_MEMBER = call_workflow("invite_member", n.InviteMemberNode)
ACCEPT_INVITE = call_workflow("accept_invite", n.AcceptInviteNode)
CHANGE_MEMBER_ROLE = call_workflow("change_member_role", n.ChangeMemberRoleNode)
REMOVE_MEMBER = call_workflow("remove_member", n.RemoveMemberNode)
