"""``GET /v1/models``: exactly the models the calling key may use, in OpenAI's list shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from unigate.errors import UnigateError
from unigate.http.responses import error_response, json_response
from unigate.http.state import Gateway
from unigate.routing.candidates import allowed_models


async def list_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        key = gateway.keys.authenticate(request.headers)
    except UnigateError as err:
        return error_response(err)
    runtime = gateway.runtime
    data = []
    for alias in allowed_models(runtime, key):
        owner = runtime.channels_by_alias[alias][0].name
        data.append({"id": alias, "object": "model", "created": 0, "owned_by": owner})
    return json_response({"object": "list", "data": data})
