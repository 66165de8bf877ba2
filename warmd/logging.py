"""The only place that configures structlog (and routes the stdlib `logging` through it).

Events are snake_case facts with fields (`log.info("became_leader", term=3)`). Output is one
JSON object per line when stderr is not a terminal (journald keeps lines whole), a readable
console line on a terminal. `WARMD_LOG_LEVEL` / `WARMD_LOG_FORMAT` override the config.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog

from warmd.errors import ConfigError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("auto", "json", "console")
LEVEL_ENV = "WARMD_LOG_LEVEL"
FORMAT_ENV = "WARMD_LOG_FORMAT"


def configure(
    level: str = "info", output_format: str = "auto", stream: TextIO | None = None
) -> str:
    """Configure structlog and stdlib logging once at startup; return the format chosen.

    Raises:
        ValueError: an unknown level or format in the arguments.
        ConfigError: an unknown level or format in the environment (names the variable).
    """
    stream = stream if stream is not None else sys.stderr
    level = _override(LEVEL_ENV, level, tuple(LEVELS))
    output_format = _override(FORMAT_ENV, output_format, FORMATS)
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    chosen = resolve_format(output_format, stream)
    shared = _shared_processors()
    renderer = _renderer(chosen)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,  # capture_logs() in tests must still see events
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    return chosen


def _override(variable: str, value: str, choices: tuple[str, ...]) -> str:
    """The environment's value of `variable` if set (checked), else `value`."""
    text = os.environ.get(variable)
    if text is None:
        return value.lower()
    if text.lower() not in choices:
        raise ConfigError(f"environment variable {variable}: {text[:40]!r} is not one of "
                          f"{', '.join(choices)}")
    return text.lower()


def resolve_format(output_format: str, stream: TextIO) -> str:
    """`auto` becomes `console` on a terminal and `json` otherwise (journald, files, pipes).

    Raises:
        ValueError: `output_format` is not auto, json or console.
    """
    if output_format not in FORMATS:
        raise ValueError(f"log format {output_format!r} is not one of {', '.join(FORMATS)}")
    if output_format != "auto":
        return output_format
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def get_logger(name: str | None = None, **initial_fields: Any) -> Any:
    """A structlog logger; `name` becomes the `logger` field (e.g. `warmd.admin`)."""
    logger = structlog.get_logger(name)
    return logger.bind(**initial_fields) if initial_fields else logger


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _renderer(chosen: str) -> Any:
    if chosen == "json":
        return _JsonRenderer()
    # Plain tracebacks: with `rich` installed structlog's default would print frame locals.
    return structlog.dev.ConsoleRenderer(colors=False,
                                         exception_formatter=structlog.dev.plain_traceback)


class _JsonRenderer:
    """Exceptions as structured dicts (type, message, stack; never frame locals, which may
    hold a secret or a request's data), then one JSON object per line."""

    def __init__(self) -> None:
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        self._tracebacks = structlog.processors.ExceptionRenderer(transformer)
        self._render = structlog.processors.JSONRenderer(default=repr)

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        return self._render(logger, method_name, self._tracebacks(logger, method_name, event_dict))
