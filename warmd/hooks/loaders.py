"""Built-in loaders and key mapper: known value, origin fetch, HTTP replay."""

from __future__ import annotations

from urllib.parse import urlencode

from warmd.cache.http import HttpClient
from warmd.errors import ConfigError
from warmd.hooks.base import WarmRequest
from warmd.hooks.readiness import fill


def request_url(request: WarmRequest) -> str:
    """The request's path with its parameters as a sorted query string."""
    if not request.params:
        return request.path
    separator = "&" if "?" in request.path else "?"
    return request.path + separator + urlencode(sorted(request.params.items()))


class RequestKeyMapper:
    """Key = the request's own key, else `prefix` + path and sorted query string."""

    def __init__(self, prefix: str = "", name: str = "request_key") -> None:
        self.prefix, self.name = prefix, name

    def key_for(self, request: WarmRequest) -> str:
        return request.key or self.prefix + request_url(request)


class ValueLoader:
    """Direct fill: the value came with the request (from a plugin or the planner)."""

    name = "value"
    uses_origin = False

    async def load(self, request: WarmRequest) -> bytes | None:
        if request.value is None:
            raise ConfigError(f"value loader: request {request.path!r} carries no value")
        return request.value


class FetchLoader:
    """GET the origin at `url_template` (fields: path, key, and the request's params),
    then the runner writes the body to the cache."""

    uses_origin = True

    def __init__(self, client: HttpClient, url_template: str = "{path}",
                 name: str = "fetch") -> None:
        self.client, self.url_template, self.name = client, url_template, name

    async def load(self, request: WarmRequest) -> bytes | None:
        context = {**request.params, "path": request_url(request), "key": request.key}
        response = await self.client.get(fill(self.url_template, context), keep_body=True)
        return response.body


class ReplayLoader:
    """GET the request against the service itself; its read-through cache fills, so
    there is nothing for the runner to write."""

    uses_origin = True

    def __init__(self, client: HttpClient, name: str = "replay") -> None:
        self.client, self.name = client, name
        self.bytes_received = 0

    async def load(self, request: WarmRequest) -> bytes | None:
        response = await self.client.get(request_url(request))
        self.bytes_received += response.body_bytes
        return None
