"""What the model can call: the toolbox and user tools, ``code_interpreter`` (:mod:`.interpreter`),
approval and risk checks (:mod:`.safety`), the web, files and MCP servers."""
