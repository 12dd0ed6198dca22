"""OpenAI Chat Completions inbound: the request contract, parsing, the routes and their replies."""
