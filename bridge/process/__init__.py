"""The serving process: the aiohttp application, its lifecycle (start, drain), the gunicorn worker,
the operational endpoints, and every private aiohttp/gunicorn hook (`compat`)."""
