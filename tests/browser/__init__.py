"""Browser tests: a real JupyterLab driven by Playwright with Debian's chromium."""
