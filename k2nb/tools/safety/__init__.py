"""Asking before calls that act (approval) and the static check of what code might do (risk)."""
