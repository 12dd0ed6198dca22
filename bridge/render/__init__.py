"""Renderers: turn the canonical event stream into each protocol's reply."""
