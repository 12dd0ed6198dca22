"""voice-llm-bridge: lets real-time voice platforms talk to any large language model."""

__version__ = "0.2.0"
