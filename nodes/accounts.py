"""Nodes for accounts and workspaces (screens 1, 2 and 11)."""

from app.services import accounts, workspaces
from nodes.services import service_node

SignUpNode = service_node(accounts.sign_up, "SignUpNode")
SignInNode = service_node(accounts.sign_in, "SignInNode")
RefreshTokenNode = service_node(accounts.refresh, "RefreshTokenNode")
SignOutNode = service_node(accounts.sign_out, "SignOutNode")
LoadMeNode = service_node(accounts.get_me, "LoadMeNode")
LoadUsersNode = service_node(accounts.users_by_ids, "LoadUsersNode")

ListMyWorkspacesNode = service_node(workspaces.list_my_workspaces, "ListMyWorkspacesNode")
LoadWorkspacesNode = service_node(workspaces.workspaces_by_ids, "LoadWorkspacesNode")
RenameWorkspaceNode = service_node(workspaces.rename_workspace, "RenameWorkspaceNode")
ListMembersNode = service_node(workspaces.list_members, "ListMembersNode")
LoadMembersNode = service_node(workspaces.members_by_ids, "LoadMembersNode")
InviteMemberNode = service_node(workspaces.invite_member, "InviteMemberNode")
AcceptInviteNode = service_node(workspaces.accept_invite, "AcceptInviteNode")
ChangeMemberRoleNode = service_node(workspaces.change_member_role, "ChangeMemberRoleNode")
RemoveMemberNode = service_node(workspaces.remove_member, "RemoveMemberNode")
