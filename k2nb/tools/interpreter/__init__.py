"""``code_interpreter``: the model's code runs as real cells in the user's namespace."""
