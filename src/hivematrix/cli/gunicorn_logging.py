"""gunicorn's logger, minus its access log (each app logs its requests itself)."""

from typing import Any

from gunicorn.glogging import Logger


class AppLogsRequests(Logger):  # type: ignore[misc]
    def access(self, *_args: Any) -> None:
        """The app's JSON request log (with correlation ids) already has this line."""
