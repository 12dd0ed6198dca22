"""Reading a request body: capped (MAX_BODY_BYTES) and under a deadline (BODY_TIMEOUT) on every route.

A caller that trickles its body never holds a connection longer than the deadline; a form
whose parts are malformed is a 400 naming the problem, never a 500.
"""

from __future__ import annotations

import asyncio

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict

from bridge.errors import BridgeError, ErrorKind


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The whole body; a `body_timeout` BridgeError when it takes longer than `timeout` seconds."""
    if request.content.is_eof():  # all of it is here already (the usual case): nothing to wait for
        return await request.read()
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise _too_slow(timeout) from None


class FileField:
    """A form part sent as a file upload (the form route takes text fields only)."""


async def read_form(request: web.Request, timeout: float, max_fields: int,
                    max_bytes: int) -> MultiDict[str | FileField]:
    """The form fields (urlencoded or multipart) under the same deadline and size cap.

    At most `max_fields` fields are parsed: their count is checked before the work is done.
    Malformed is a `bad_request` BridgeError.
    """
    try:
        async with asyncio.timeout(timeout):
            if request.content_type == "multipart/form-data":
                return await _multipart(request, max_fields, max_bytes)
            body = await request.read()
            if body.count(b"&") >= max_fields:
                raise _too_many(max_fields)
            form = await request.post()
            return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
    except TimeoutError:
        raise _too_slow(timeout) from None
    except (ValueError, LookupError, HttpProcessingError, AssertionError) as exc:  # encoding, charset, part headers
        raise BridgeError(ErrorKind.BAD_REQUEST, f"body: not a valid form ({type(exc).__name__})") from None


async def _multipart(request: web.Request, max_fields: int, max_bytes: int) -> MultiDict[str | FileField]:
    fields: MultiDict[str | FileField] = MultiDict()
    budget = max_bytes  # MAX_BODY_BYTES over all parts (aiohttp caps only the bodies it reads itself)
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if len(fields) >= max_fields:
            raise _too_many(max_fields)
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise BridgeError(ErrorKind.BAD_REQUEST, "body: a form part has no name (or is itself multipart)")
        data = bytearray()
        while chunk := await part.read_chunk():
            data += chunk
            budget -= len(chunk)
            if budget < 0:
                raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=max_bytes - budget)
        if part.filename is not None:
            fields.add(part.name, FileField())
            continue
        charset = part.get_charset(default="utf-8")
        fields.add(part.name, bytes(data).decode(charset))
    return fields


def _too_many(max_fields: int) -> BridgeError:
    return BridgeError(ErrorKind.BAD_REQUEST, f"body: more than {max_fields} form fields")


def _too_slow(timeout: float) -> BridgeError:
    return BridgeError(ErrorKind.BODY_TIMEOUT, f"The request body did not arrive within {timeout:g} seconds.")
