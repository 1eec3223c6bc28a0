"""Shared argument metadata."""

import strawberry

INPUT = strawberry.argument(description="The fields of this action.")
