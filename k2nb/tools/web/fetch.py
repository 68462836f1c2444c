"""``fetch_url``: a page or PDF as readable text, with a pager for the rest.

It is the agent's only network access outside code, so it is deliberately narrow:
http(s) only, and by default never a private, loopback or link-local address — checked for the
first URL and again for every redirect, and the connection goes to the very address that was
checked (a second DNS answer cannot point it elsewhere) — with a total time limit and a byte
limit.
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydantic

from ...core.tool import BaseTool, ToolOutcome
from ..observation import OutputStore, clean_text, html_to_text, redact
from ..schema import model_parameters
from .search import USER_AGENT

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-ndjson", "application/csv")
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_PDF_PAGES = 300


class FetchError(Exception):
    """A fetch that was refused or failed; the message is written for the model and the user."""


@dataclass
class FetchPolicy:
    """What ``fetch_url`` may do."""

    timeout: float = 20.0  # seconds for the whole fetch, redirects included
    max_bytes: int = 10_000_000
    max_redirects: int = 5
    allow_private: bool = False  # loopback / private / link-local addresses (tests, intranets)
    allowed_hosts: tuple[str, ...] = ()  # "host", "host:port" or a CIDR network allowed anyway


@dataclass
class Page:
    """A fetched document as text."""

    url: str
    final_url: str
    content_type: str
    title: str
    text: str
    size: int
    notes: list[str] = field(default_factory=list)


def check_url(url: str, allow_private: bool = False,
              allowed_hosts: tuple[str, ...] = ()) -> httpx.URL:
    """Refuse anything but http(s) to a public address (unless ``allow_private``, or the host
    is in ``allowed_hosts``)."""
    return _checked(url, allow_private, allowed_hosts)[0]


def _checked(url: str, allow_private: bool,
             allowed_hosts: tuple[str, ...]) -> tuple[httpx.URL, str | None]:
    """The parsed URL and the checked address to connect to (None: let httpx resolve it)."""
    try:
        parsed = httpx.URL(url)
    except Exception as exc:
        raise FetchError(f"{url!r} is not a valid URL ({exc}).") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"Only http and https URLs can be fetched, not "
                         f"{parsed.scheme or 'relative'} URLs like {url!r}.")
    host = parsed.host
    if not host:
        raise FetchError(f"The URL {url!r} has no host.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if allow_private or host in allowed_hosts or f"{host}:{port}" in allowed_hosts:
        return parsed, None
    networks = []
    for entry in allowed_hosts:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"Could not resolve the host {host!r}: {exc.strerror}.") from None
    checked = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global and not any(address in n for n in networks):
            raise FetchError(
                f"Refused to fetch {url}: {host} resolves to {address}, a private, loopback or "
                "otherwise non-public address. (The user can allow such addresses with "
                "`%config K2Magics.private_urls = True`.)")
        checked.append(str(address))
    # Connect to an address just checked, not to a second DNS answer (DNS rebinding); IPv4
    # first, as many networks have no IPv6 route.
    checked.sort(key=lambda a: ":" in a)
    return parsed, checked[0]


def _request(client: httpx.Client, url: httpx.URL, address: str | None) -> httpx.Request:
    if address is None:
        return client.build_request("GET", url)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return client.build_request("GET", url.copy_with(host=address),
                                headers={"Host": url.netloc.decode("ascii")},
                                extensions=extensions)


def fetch(url: str, policy: FetchPolicy | None = None) -> Page:
    """Fetch ``url`` under ``policy`` and extract readable text; raises :class:`FetchError`."""
    policy = policy or FetchPolicy()
    deadline = time.monotonic() + policy.timeout
    current, address = _checked(url, policy.allow_private, policy.allowed_hosts)
    timeout = httpx.Timeout(policy.timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "text/html,application/pdf,text/*;q=0.9,*/*;q=0.5"}
    try:
        with httpx.Client(follow_redirects=False, timeout=timeout, headers=headers) as client:
            for _hop in range(policy.max_redirects + 1):
                response = client.send(_request(client, current, address), stream=True)
                try:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        current, address = _checked(str(current.join(location)),
                                                    policy.allow_private, policy.allowed_hosts)
                        continue
                    body, truncated = _read_body(response, policy, deadline)
                    if response.status_code >= 400:
                        excerpt = html_to_text(body[:2000].decode("utf-8", "replace"))[:300]
                        raise FetchError(f"{current} answered HTTP {response.status_code} "
                                         f"{response.reason_phrase}." +
                                         (f" Body: {excerpt}" if excerpt else ""))
                    return _to_page(url, str(current), response, body, truncated, policy)
                finally:
                    response.close()
            raise FetchError(f"Too many redirects (more than {policy.max_redirects}) from {url}.")
    except httpx.TimeoutException:
        raise FetchError(f"Fetching {url} timed out after {policy.timeout:g} s.") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"Fetching {url} failed: {type(exc).__name__}: {exc}.") from None


def _read_body(response: httpx.Response, policy: FetchPolicy, deadline: float) -> tuple[bytes, bool]:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes and _is_pdf(response):
        raise FetchError(f"The PDF is {int(declared):,} bytes, over the {policy.max_bytes:,}-byte "
                         "limit of fetch_url; download it in code_interpreter instead.")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        # httpx's timeout is per read; a server that trickles bytes needs a total deadline too.
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("total time limit")
        chunks.append(chunk)
        size += len(chunk)
        if size > policy.max_bytes:
            return b"".join(chunks)[: policy.max_bytes], True
    return b"".join(chunks), False


def _is_pdf(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/pdf" or response.url.path.lower().endswith(".pdf")


def _to_page(url: str, final: str, response: httpx.Response, body: bytes, truncated: bool,
             policy: FetchPolicy) -> Page:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    notes = [f"only the first {policy.max_bytes:,} bytes were read"] if truncated else []
    if kind == "application/pdf" or body[:5] == b"%PDF-":
        if truncated:
            raise FetchError(f"The PDF at {final} is over the {policy.max_bytes:,}-byte limit.")
        title, text, pdf_notes = pdf_text(body)
        return Page(url, final, "application/pdf", title, text, len(body), notes + pdf_notes)
    if kind in HTML_TYPES or (not kind and body.lstrip()[:1] == b"<"):
        title, text = html_text(body, final)
        return Page(url, final, kind or "text/html", title, text, len(body), notes)
    if not kind or kind.startswith(TEXT_TYPES) or kind.endswith(("+json", "+xml")):
        text = body.decode(response.encoding or "utf-8", "replace")
        return Page(url, final, kind or "text/plain", "", text, len(body), notes)
    raise FetchError(f"{final} is {kind} ({len(body):,} bytes), which is not readable as text. "
                     "To work with it, download it in code_interpreter (e.g. with httpx).")


def html_text(html: bytes | str, url: str | None = None) -> tuple[str, str]:
    """Title and main text of an HTML page (trafilatura; markdown with tables kept)."""
    import trafilatura

    text = trafilatura.extract(html, url=url, output_format="markdown", include_tables=True,
                               include_comments=False, include_links=False, favor_recall=True,
                               with_metadata=False)
    title = _html_title(html)
    if not title:
        meta = trafilatura.extract_metadata(html)
        title = (meta.title if meta and meta.title else "") or ""
    if not text or not text.strip():  # tiny or unusual pages: plain tag stripping
        markup = html.decode("utf-8", "replace") if isinstance(html, bytes) else html
        text = html_to_text(markup)
    return title.strip(), text.strip()


def _html_title(html: bytes | str) -> str:
    import lxml.html

    try:
        found = lxml.html.fromstring(html).findtext(".//title")
    except Exception:  # empty or unparsable markup
        return ""
    return " ".join((found or "").split())


def pdf_text(data: bytes) -> tuple[str, str, list[str]]:
    """Title, text (page by page) and notes of a PDF, through pypdf."""
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FetchError("The PDF is encrypted with a password; its text cannot be read.")
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title)
        pages = reader.pages
        parts = []
        for number, page in enumerate(pages, 1):
            if number > MAX_PDF_PAGES:
                break
            parts.append(f"[page {number}]\n{(page.extract_text() or '').strip()}")
    except FetchError:
        raise
    except Exception as exc:
        raise FetchError(f"The PDF could not be read: {type(exc).__name__}: {exc}.") from None
    notes = [f"{len(pages)} pages"]
    if len(pages) > MAX_PDF_PAGES:
        notes.append(f"only the first {MAX_PDF_PAGES} pages were extracted")
    text = "\n\n".join(parts)
    if not any(p.split("\n", 1)[-1] for p in parts):
        notes.append("no text layer found (a scanned PDF?)")
    return title.strip(), text, notes


class FetchUrlArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    url: str = pydantic.Field(description="An http or https URL of a web page, PDF or text file.")


class FetchUrl(BaseTool):
    """``fetch_url``: a page's readable text, capped, with the rest pageable by ``read_output``.

    A read, but a network one: the site learns what the agent asks for (and a URL can carry
    data out). ``gated`` (the ``approve_fetch`` option) makes approval modes ask before each
    fetch, showing the host.
    """

    name = "fetch_url"
    arguments = FetchUrlArguments

    def __init__(self, store: OutputStore, policy: FetchPolicy | None = None,
                 observation_chars: int = 8_000, secrets: tuple[str, ...] = (),
                 gated: bool = False):
        self.side_effects = gated
        self.store = store
        self.policy = policy or FetchPolicy()
        self.observation_chars = observation_chars
        self.secrets = secrets
        self.parameters = model_parameters(FetchUrlArguments)
        self.description = (
            "Fetch a web page, PDF or text file and read its main text (title first). Long "
            "documents are shortened; read further with `read_output` at the offset given.")

    def risks(self, values: dict[str, Any]) -> list[str]:
        if not self.side_effects:
            return []
        try:
            host = httpx.URL(values["url"]).host or values["url"]
        except Exception:
            host = values["url"]
        return [f"reads from the network ({host}); asked because approve_fetch is on"]

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        start = time.monotonic()
        try:
            page = fetch(values["url"], self.policy)
        except FetchError as exc:
            return ToolOutcome(redact(str(exc), self.secrets), is_error=True, status="error",
                               duration_s=time.monotonic() - start)
        text = redact(clean_text(page.text), self.secrets)
        self.store.put(call_id, text)
        header = [f"Title: {page.title or '(none)'}", f"URL: {page.final_url}"]
        if page.final_url != page.url:
            header[-1] += f" (redirected from {page.url})"
        details = [page.content_type, f"{len(text):,} chars of text"] + page.notes
        header.append("Content: " + ", ".join(details))
        if len(text) > self.observation_chars:
            header.append(f"Shortened: read more with read_output(call_id={json.dumps(call_id)}, "
                          f"offset=N).")
        if len(text) > self.observation_chars:
            body = self.store.page(call_id, 0, self.observation_chars)
        else:
            body = text or "(no text found)"
        return ToolOutcome("\n".join(header) + "\n\n" + body, duration_s=time.monotonic() - start)
