"""Gunicorn settings for ``hivematrix run``: gunicorn's own log lines as JSON on stderr too."""

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json",
                   "stream": "ext://sys.stderr"},
    },
    # The app installs its own JSON handler on the root logger when it is created.
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
accesslog = None  # the app logs one line per request, with its correlation id
graceful_timeout = 20
timeout = 60

# gunicorn builds an access-log record for every request whenever a logging config is given,
# even with nowhere to send it; the app's own request log replaces it, so skip that work.
logger_class = "hivematrix.cli.gunicorn_logging.AppLogsRequests"
