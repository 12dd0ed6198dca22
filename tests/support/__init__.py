"""What the tests share: fake upstreams, tool and MCP servers, the app's test server, helpers.

Test modules import from here, never from one another (tests/test_layout.py checks it);
pytest fixtures that use these live in tests/conftest.py.
"""
