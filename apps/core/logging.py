"""Structured JSON logs: request id, tenant and user on every line, secrets masked."""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from apps.core import context
from apps.core.masking import mask_text, mask_value


class RequestContextFilter(logging.Filter):
    """Attach the current request context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        record.request_id = ctx.request_id
        record.tenant = ctx.tenant_slug
        record.user_id = ctx.user_id
        return True


class MaskingJsonFormatter(JsonFormatter):
    """JSON lines with the same masking the audit log applies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in list(log_data.items()):
            if key == "message" and isinstance(value, str):
                log_data[key] = mask_text(value)
            elif key not in {"time", "level", "logger", "request_id", "tenant", "user_id"}:
                log_data[key] = mask_value(key, value)
        return log_data

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging API name)
        return mask_text(super().formatException(ei))
