"""Web tools: ``web_search`` (:mod:`.search`) and ``fetch_url`` (:mod:`.fetch`)."""

from .fetch import FetchError, FetchPolicy, FetchUrl, Page, check_url, fetch, html_text, pdf_text
from .search import (
    DuckDuckGoSearch,
    MoonshotWebSearch,
    SearchProvider,
    SearchResult,
    SearxngSearch,
    WebSearch,
    check_provider,
    choose_provider,
    search_tool,
)

__all__ = ["DuckDuckGoSearch", "FetchError", "FetchPolicy", "FetchUrl", "MoonshotWebSearch",
           "Page", "SearchProvider", "SearchResult", "SearxngSearch", "WebSearch", "check_provider",
           "check_url", "choose_provider", "fetch", "html_text", "pdf_text", "search_tool"]
