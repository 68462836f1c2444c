"""The types every layer shares: messages, events and stream deltas, runs, and the Backend and
Tool protocols. Nothing here imports Jupyter or any other part of k2nb."""
