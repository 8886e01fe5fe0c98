"""Who a call acts for: a user in an app, optionally in a project, maybe an admin."""

from __future__ import annotations

from dataclasses import dataclass

# The first segment of every namespace; what a principal may read follows from it.
SCOPES = ("app", "user", "project", "session", "temp")


@dataclass(frozen=True)
class Principal:
    user: str
    app: str = "abathur"
    project: str | None = None
    admin: bool = False

    @property
    def actor(self) -> str:
        """How this principal is named in audit rows and created_by columns."""
        return f"user:{self.user}"

    def may_use_session(self, user_id: str, app_name: str) -> bool:
        """Sessions belong to their (user, app); an admin may use any."""
        return self.admin or (user_id == self.user and app_name == self.app)
