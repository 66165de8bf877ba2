"""WebServer: runs one aiohttp app on one address until closed (start, port, close)."""

from __future__ import annotations

from aiohttp import web

from warmd.config_table import Address
from warmd.logging import get_logger

_log = get_logger("warmd.web")


class WebServer:
    """`await WebServer(app, address, name).start()`; `port` is the bound port (for port 0)."""

    def __init__(self, app: web.Application, address: Address, name: str) -> None:
        self.app = app
        self.address = address
        self.name = name
        self.port = address.port
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        """Bind and serve. Raises: OSError when the address cannot be bound."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address.host, self.address.port)
        await site.start()
        if self._runner.addresses:
            self.port = self._runner.addresses[0][1]
        _log.info("web_listening", listener=self.name, host=self.address.host, port=self.port)

    async def close(self) -> None:
        await self._runner.cleanup()
