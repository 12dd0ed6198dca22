"""Inbound protocols: each turns a platform's request into a canonical ChatRequest."""
