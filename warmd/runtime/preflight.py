"""Everything `warmd run` checks before it binds a socket or starts a worker, in one place.

`warmd check-config` runs the same checks, so a file it accepts does not fail at start-up
on a setting only the daemon looked at (TLS files, executor bounds, cache settings, log
formats). Nothing here connects anywhere: caches open their connections lazily.
"""

from __future__ import annotations

import ssl

from warmd.cache.configured import ConfiguredCaches
from warmd.config import Config
from warmd.errors import CacheError, ConfigError
from warmd.runtime.execute.executor import ExecutorOptions
from warmd.runtime.ingest.pipeline import source_format
from warmd.runtime.leader.planning import planner_settings
from warmd.runtime.node.tls import tls_contexts


def check(config: Config) -> None:
    """Raise ConfigError for the first setting the daemon could not start with.

    Raises:
        ConfigError: the message names the section and what is wrong.
    """
    ExecutorOptions.from_config(config.executor)
    planner_settings(config)
    for source in config.sources:
        try:
            source_format(source)
        except ValueError as error:
            raise ConfigError(f"sources.{source.name}: {error}") from None
    try:
        ConfiguredCaches(config.caches)  # builds every backend; none connects until used
    except CacheError as error:
        raise ConfigError(f"caches: {error}") from None
    try:
        tls_contexts(config)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"cluster.tls: cannot load the certificates: {error}") from None
