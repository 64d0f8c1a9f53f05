"""Structured logging for every Syrup component.

Loops log, libraries raise. Each module takes a logger with :func:`get`, and binds the object
it works on (``app=``, ``kind=``, ``namespace=``, ``name=``, ``run=``...) so the context travels
as fields, never as pre-formatted text. Output is plain ``key=value`` text for a terminal, or
one JSON object per line with ``--log-format json``. Standard-library loggers (uvicorn, httpx)
are routed through the same renderer so a JSON log stays parseable end to end.

Levels mean one thing each: DEBUG detail, INFO a state change a user cares about, WARNING
degraded but working, ERROR a failed operation.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["plain", "json"]

_SECRET_KEYS = frozenset({"token", "password", "secret", "authorization", "private_key"})


def _mask_secrets(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Never log a secret, even when a caller binds one by mistake."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS and event_dict[key]:
            event_dict[key] = "***"
    return event_dict


def configure(*, fmt: LogFormat = "plain", level: str = "INFO") -> None:
    """Set up structlog and the standard library's root logger once per process."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # A plain traceback: rich's, with local variables, can take seconds to render
            # and would stall the event loop of a server logging a failed request.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log is one line per request: far too loud at INFO for a watch-heavy API.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)


def get(name: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """Return a module logger, optionally bound to the object it works on."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**context) if context else logger
