"""All SQLAlchemy models; importing this package registers every table on Base.metadata."""

from app.models.accounts import Invite, Membership, RefreshToken, Role, User, Workspace

__all__ = ["Invite", "Membership", "RefreshToken", "Role", "User", "Workspace"]
