"""OpenAI Responses API inbound: `/v1/responses` over HTTP and WebSocket, with `previous_response_id`.

parse.py reads a create body into the canonical request; store.py keeps each stored
response's conversation (in the process or in a shared Redis); routes.py answers `POST`
(streamed or whole) and websocket.py the WebSocket mode (`GET` upgraded). The events and the
response object are rendered by bridge/render/responses.py.
"""
