"""The web tests' shared fixture: a real one-node cluster serving the console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from warmd.testing.console import Console, running_console


@pytest.fixture(scope="module")
def console() -> Iterator[Console]:
    with running_console() as started:
        yield started
