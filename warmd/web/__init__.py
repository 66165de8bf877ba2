"""The aiohttp web UI and REST API."""
