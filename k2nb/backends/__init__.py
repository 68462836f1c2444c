"""Sources of model steps: the OpenAI-compatible API, replays of recordings, a local model in
the kernel (:mod:`.local`), and the choice between them when the user names none."""
