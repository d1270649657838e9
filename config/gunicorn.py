"""gunicorn settings (``gunicorn -c config/gunicorn.py config.wsgi``): JSON log lines like the rest of Bastion.

Bind address, workers and threads come from the command line or GUNICORN_CMD_ARGS.
The access log stays off: RequestContextMiddleware writes one JSON line per
request with the request id, tenant and user (``bastion.access``).
"""

from __future__ import annotations

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "apps.core.logging.RequestContextFilter"}},
    "formatters": {"json": {"()": "apps.core.logging.MaskingJsonFormatter"}},
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context"],
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["json"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["json"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
