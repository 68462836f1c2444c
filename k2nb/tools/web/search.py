"""``web_search``: Moonshot's builtin ``$web_search``, or a pluggable provider searched from the
kernel (DuckDuckGo through ``ddgs`` by default, SearXNG, or the user's own)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
import pydantic

from ...core.tool import BaseTool, ToolOutcome
from ..observation import clean_text, redact
from ..schema import model_parameters

USER_AGENT = "k2nb (Jupyter agent; +https://github.com/k2nb/k2nb)"


@dataclass
class SearchResult:
    """One hit of a web search."""

    title: str
    url: str
    snippet: str = ""


@runtime_checkable
class SearchProvider(Protocol):
    """Anything that can search the web: ``search(query, max_results) -> [SearchResult]``.

    Plug your own in with :func:`set_search_provider` (a paid API with your key, an intranet
    index, ...); raise an exception with a readable message when a search fails.
    """

    name: str

    def search(self, query: str, max_results: int) -> list[SearchResult]: ...


class DuckDuckGoSearch:
    """Keyless metasearch through the ``ddgs`` package (DuckDuckGo and other engines)."""

    name = "duckduckgo"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        from ddgs import DDGS

        hits = DDGS().text(query, max_results=max_results) or []
        return [SearchResult(h.get("title", ""), h.get("href", ""), h.get("body", ""))
                for h in hits]


class SearxngSearch:
    """A SearXNG instance (self-hosted, keyless) through its JSON API."""

    name = "searxng"

    def __init__(self, base_url: str, timeout: float = 15.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        response = httpx.get(f"{self.base_url}/search", params={"q": query, "format": "json"},
                             timeout=self.timeout, headers={"User-Agent": USER_AGENT})
        if response.status_code == 403:
            raise RuntimeError(f"SearXNG at {self.base_url} refused JSON output: enable `json` "
                               "under `search.formats` in its settings.yml")
        response.raise_for_status()
        hits = response.json().get("results", [])[:max_results]
        return [SearchResult(h.get("title", ""), h.get("url", ""), h.get("content", ""))
                for h in hits]


def check_provider(provider: Any) -> None:
    """``TypeError`` unless ``provider`` can search (for ``k2nb.set_search_provider``)."""
    if provider is not None and not isinstance(provider, SearchProvider):
        raise TypeError("a search provider needs a `name` and a `search(query, max_results)` "
                        "method")


def choose_provider(setting: str, custom: SearchProvider | None = None) -> SearchProvider | None:
    """The provider the ``search`` setting names; None when none is available.

    ``auto``: ``custom`` (set with ``k2nb.set_search_provider``), else DuckDuckGo when ``ddgs``
    is installed. ``duckduckgo``, ``searxng:URL``, ``none``.
    """
    setting = (setting or "auto").strip()
    if setting == "none":
        return None
    if setting.startswith("searxng:"):
        return SearxngSearch(setting.split(":", 1)[1])
    if setting == "auto" and custom is not None:
        return custom
    if setting in ("auto", "duckduckgo"):
        try:
            import ddgs  # noqa: F401
        except ImportError:
            return None
        return DuckDuckGoSearch()
    raise ValueError(f"search must be auto, moonshot, duckduckgo, searxng:URL or none, "
                     f"got {setting!r}")


class WebSearchArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    query: str = pydantic.Field(description="What to search for.")
    max_results: int = pydantic.Field(5, ge=1, le=10, description="How many results (1-10).")


class WebSearch(BaseTool):
    """``web_search`` through a :class:`SearchProvider`, or a clear note that there is none."""

    name = "web_search"
    arguments = WebSearchArguments

    def __init__(self, provider: SearchProvider | None, secrets: tuple[str, ...] = ()):
        self.provider = provider
        self.secrets = secrets
        self.parameters = model_parameters(WebSearchArguments)
        self.description = (
            "Search the web. Returns titles, URLs and snippets; read a result with `fetch_url`.")

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        start = time.monotonic()
        if self.provider is None:
            return ToolOutcome(
                "No search provider is configured for web_search on this server, so no search "
                "ran. (The user can enable one with `%config K2Magics.search = \"duckduckgo\"` "
                "after `pip install ddgs`, `\"searxng:URL\"`, or k2nb.set_search_provider(...).) "
                "Use fetch_url on URLs you already know instead.",
                is_error=True, status="error")
        try:
            hits = self.provider.search(values["query"], values["max_results"])
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            return ToolOutcome(f"The search provider `{self.provider.name}` failed: "
                               f"{type(exc).__name__}: {exc}", is_error=True, status="error",
                               duration_s=time.monotonic() - start)
        if not hits:
            text = f"No results for {values['query']!r}."
        else:
            lines = []
            for i, hit in enumerate(hits, 1):
                lines.append(f"{i}. {hit.title.strip() or '(untitled)'}\n   {hit.url}")
                if hit.snippet:
                    lines.append(f"   {' '.join(hit.snippet.split())}")
            text = "\n".join(lines)
        return ToolOutcome(redact(clean_text(text), self.secrets),
                           duration_s=time.monotonic() - start)


class MoonshotWebSearch(BaseTool):
    """Moonshot's builtin ``$web_search``: the server searches; the client echoes the call's
    arguments back unchanged as the tool result (Moonshot's documented protocol)."""

    name = "$web_search"
    description = "Moonshot's built-in web search."
    raw_arguments = True  # Toolbox passes the raw text as values["arguments"]

    def __init__(self) -> None:
        self.parameters = {"type": "object", "properties": {}}

    def declaration(self) -> dict[str, Any]:
        return {"type": "builtin_function", "function": {"name": "$web_search"}}

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(values["arguments"])


def search_tool(setting: str, secrets: tuple[str, ...] = (),
                custom: SearchProvider | None = None) -> BaseTool:
    """The web-search tool for a run with the ``search`` setting."""
    setting = (setting or "auto").strip()
    # Moonshot's builtin $web_search is opt-in ("moonshot"): whether it may be combined with
    # thinking models is not documented, and a 400 on every default run would be far worse
    # than a keyless provider that runs in the kernel.
    if setting == "moonshot":  # also through proxies of Moonshot's API, whatever their URL
        return MoonshotWebSearch()
    return WebSearch(choose_provider(setting, custom), secrets)
