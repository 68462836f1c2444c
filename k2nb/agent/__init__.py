"""The agent loop, its context policy and its system prompt (free of Jupyter)."""
