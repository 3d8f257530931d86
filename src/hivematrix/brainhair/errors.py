"""The one refusal Brainhair's business modules raise; the API turns it into a problem."""

from __future__ import annotations


class BrainhairError(Exception):
    """A refused request: HTTP ``status``, and the input ``field`` at fault when there is one."""

    def __init__(self, message: str, *, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def not_found(what: str) -> BrainhairError:
    """Also what another user's session or approval gets: its existence is not revealed."""
    return BrainhairError(f"There is no such {what}.", status=404)
