"""OpenAI-compatible upstreams: the lean aiohttp driver (default), the SDK driver, and the wire format."""
