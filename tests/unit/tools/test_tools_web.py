"""Web tools against a real HTTP server on loopback: pages, PDFs, caps, redirects, timeouts,
search providers, Moonshot's builtin $web_search, and a %%k2 run that reads a page and computes."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

import k2nb
from k2nb.testing import Call, Reply
from k2nb.tools.observation import OutputStore
from k2nb.tools.web import (
    FetchError,
    FetchPolicy,
    FetchUrl,
    SearchResult,
    fetch,
)

UNITS = {"Q1": 1204, "Q2": 1351, "Q3": 1502, "Q4": 1713}
QUARTERLY = """<!doctype html><html><head><title>ACME quarterly units</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>Units sold in 2025</h1>
<p>The northern region kept growing through the year. The table lists the units sold in each
quarter; figures are final and audited by the finance team in January.</p>
<table><tr><th>Quarter</th><th>Units</th></tr>
""" + "".join(f"<tr><td>{q}</td><td>{n}</td></tr>" for q, n in UNITS.items()) + """
</table><p>Next report: April.</p></article><footer>© ACME</footer></body></html>"""
LONG_PARAGRAPH = ("<p>Section {i}: the committee reviewed the proposal in detail and recorded "
                  "its observations on budget, schedule and staffing for the coming year.</p>")
LONG = ("<html><head><title>A long report</title></head><body><article><h1>Long report</h1>"
        + "".join(LONG_PARAGRAPH.format(i=i) for i in range(600))
        + "<p>The final figure is FINAL-MARKER-7319.</p></article></body></html>")


def make_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Annual report 2025")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "Annual report 2025\nRevenue: 4321 thousand euros\nStaff: 57")
    pdf.add_page()
    pdf.multi_cell(0, 8, "Outlook: steady growth expected.")
    return bytes(pdf.output())


class Site:
    """Routes of the loopback web server used by these tests."""

    def __init__(self) -> None:
        self.pdf = make_pdf()
        self.hits: list[str] = []
        self.other_port = 0  # a second server: the "disallowed" redirect target

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlparse(h.path)
        self.hits.append(url.path)
        routes = {
            "/quarterly.html": ("text/html; charset=utf-8", QUARTERLY.encode()),
            "/long.html": ("text/html", LONG.encode()),
            "/report.pdf": ("application/pdf", self.pdf),
            "/data.json": ("application/json", json.dumps({"answer": 42}).encode()),
            "/image.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200),
        }
        if url.path in routes:
            kind, body = routes[url.path]
            return self.send(h, 200, kind, body)
        if url.path == "/redirect-to-page":
            return self.redirect(h, "/quarterly.html")
        if url.path == "/redirect-to-other-port":
            return self.redirect(h, f"http://127.0.0.1:{self.other_port}/secret")
        if url.path == "/redirect-to-metadata":
            return self.redirect(h, "http://169.254.169.254/latest/meta-data/")
        if url.path == "/redirect-to-file":
            return self.redirect(h, "file:///etc/passwd")
        if url.path == "/loop":
            return self.redirect(h, "/loop")
        if url.path == "/slow":
            time.sleep(3)
            return self.send(h, 200, "text/plain", b"too late")
        if url.path == "/trickle":
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.end_headers()
            try:
                for _ in range(40):
                    h.wfile.write(b"x" * 10)
                    h.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if url.path == "/huge.html":
            body = b"<html><body><p>" + b"word " * 400_000 + b"</p></body></html>"
            return self.send(h, 200, "text/html", body)
        if url.path == "/search":
            query = parse_qs(url.query)
            if query.get("format") != ["json"]:
                return self.send(h, 403, "text/plain", b"forbidden")
            q = query["q"][0]
            results = [{"title": f"Result {i} for {q}", "url": f"https://example.org/{i}",
                        "content": f"Snippet {i} about {q}."} for i in range(1, 8)]
            return self.send(h, 200, "application/json", json.dumps({"results": results}).encode())
        return self.send(h, 404, "text/html", b"<html><body><p>No such page here.</p></body></html>")

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def redirect(h: BaseHTTPRequestHandler, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()


def serve(handle: Any) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Site, str]]:
    routes = Site()
    main = serve(routes.handle)
    secret_hits: list[str] = []
    other = serve(lambda h: (secret_hits.append(h.path), Site.send(h, 200, "text/plain", b"s3cret")))
    routes.other_port = other.server_address[1]
    routes.secret_hits = secret_hits  # type: ignore[attr-defined]
    yield routes, f"http://127.0.0.1:{main.server_address[1]}"
    main.shutdown()
    other.shutdown()


def loopback_policy(base: str, **kw: Any) -> FetchPolicy:
    """Allow only the test server's own host:port, as an intranet allow-list would."""
    return FetchPolicy(allowed_hosts=(base.split("//", 1)[1],), **kw)


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


# --- fetch_url on its own ---------------------------------------------------------------------


def test_html_page_title_and_table(site):
    _, base = site
    page = fetch(f"{base}/quarterly.html", loopback_policy(base))
    assert page.title == "ACME quarterly units"
    for quarter, units in UNITS.items():
        assert re.search(rf"{quarter}\s*\|\s*{units}", page.text), page.text
    assert "Home" not in page.text  # navigation is boilerplate, not content


def test_pdf_text_and_title(site):
    _, base = site
    page = fetch(f"{base}/report.pdf", loopback_policy(base))
    assert page.content_type == "application/pdf" and page.title == "Annual report 2025"
    assert "Revenue: 4321 thousand euros" in page.text
    assert "[page 2]" in page.text and "steady growth" in page.text


def test_page_larger_than_cap_is_paged(site):
    _, base = site
    store = OutputStore()
    tool = FetchUrl(store, loopback_policy(base), observation_chars=3000)
    outcome = tool.invoke("functions.fetch_url:0", {"url": f"{base}/long.html"})
    assert not outcome.is_error
    assert outcome.observation.startswith("Title: A long report\n")
    assert "read_output(call_id=\"functions.fetch_url:0\", offset=N)" in outcome.observation
    assert "FINAL-MARKER-7319" not in outcome.observation
    assert len(outcome.observation) < 3600
    full = store.texts["functions.fetch_url:0"]
    assert len(full) > 60_000 and full.rstrip().endswith("FINAL-MARKER-7319.")
    tail = store.page("functions.fetch_url:0", len(full) - 200, 4000)
    assert "FINAL-MARKER-7319" in tail and "[end of output]" in tail


def test_loopback_refused_by_default(site):
    routes, base = site
    before = len(routes.hits)
    with pytest.raises(FetchError, match="non-public address.*private_urls"):
        fetch(f"{base}/quarterly.html")
    assert len(routes.hits) == before  # refused before connecting


@pytest.mark.parametrize("path, message", [
    ("/redirect-to-other-port", "127.0.0.1 resolves to 127.0.0.1"),
    ("/redirect-to-metadata", "169.254.169.254"),
    ("/redirect-to-file", "Only http and https"),
])
def test_redirect_to_disallowed_address_is_refused(site, path, message):
    routes, base = site
    with pytest.raises(FetchError, match=message):
        fetch(f"{base}{path}", loopback_policy(base))
    assert routes.secret_hits == []  # the other server was never contacted


def test_connects_to_the_checked_address_not_a_second_dns_answer(site, monkeypatch):
    # A rebinding DNS answers an allowed address for the check, then a forbidden one.
    _, base = site
    port = base.rsplit(":", 1)[1]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 10)

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":
            host = next(answers)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    page = fetch(f"http://rebind.test:{port}/quarterly.html",
                 FetchPolicy(allowed_hosts=("127.0.0.1/32",)))
    assert page.title == "ACME quarterly units"
    assert page.final_url == f"http://rebind.test:{port}/quarterly.html"
    assert next(answers) == "127.0.0.2"  # only the one checked lookup was made


def test_allowed_redirect_is_followed_and_reported(site):
    _, base = site
    tool = FetchUrl(OutputStore(), loopback_policy(base))
    outcome = tool.invoke("c1", {"url": f"{base}/redirect-to-page"})
    assert f"URL: {base}/quarterly.html (redirected from {base}/redirect-to-page)" in (
        outcome.observation)


def test_redirect_loop_stops(site):
    _, base = site
    with pytest.raises(FetchError, match="Too many redirects"):
        fetch(f"{base}/loop", loopback_policy(base, max_redirects=3))


def test_slow_server_hits_the_timeout(site):
    _, base = site
    tool = FetchUrl(OutputStore(), loopback_policy(base, timeout=0.5))
    start = time.monotonic()
    outcome = tool.invoke("c1", {"url": f"{base}/slow"})
    elapsed = time.monotonic() - start
    assert outcome.is_error and "timed out after 0.5 s" in outcome.observation
    assert elapsed < 1.5, elapsed


def test_trickling_server_hits_the_total_deadline(site):
    # Each chunk arrives well within httpx's per-read timeout; only a total deadline stops it.
    _, base = site
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 1 s"):
        fetch(f"{base}/trickle", loopback_policy(base, timeout=1.0))
    assert time.monotonic() - start < 2.0


def test_size_limit_truncates_and_says_so(site):
    _, base = site
    tool = FetchUrl(OutputStore(), loopback_policy(base, max_bytes=100_000))
    outcome = tool.invoke("c1", {"url": f"{base}/huge.html"})
    assert not outcome.is_error
    assert "only the first 100,000 bytes were read" in outcome.observation


def test_errors_are_observations(site):
    _, base = site
    tool = FetchUrl(OutputStore(), loopback_policy(base))
    missing = tool.invoke("c1", {"url": f"{base}/nope"})
    assert missing.is_error and "HTTP 404" in missing.observation
    assert "No such page here." in missing.observation
    image = tool.invoke("c2", {"url": f"{base}/image.png"})
    assert image.is_error and "image/png" in image.observation and "not readable" in (
        image.observation)
    data = tool.invoke("c3", {"url": f"{base}/data.json"})
    assert not data.is_error and '{"answer": 42}' in data.observation
    ftp = tool.invoke("c4", {"url": "ftp://example.org/file"})
    assert ftp.is_error and "Only http and https" in ftp.observation


# --- web_search -------------------------------------------------------------------------------


def test_moonshot_builtin_web_search_echoes_arguments(shell, k2env):
    raw = '{"search_result":{"search_id":"s-123"},"usage":{"total_tokens":4321}}'
    k2env.add(
        Reply(reasoning="Search first.", tool_calls=[Call("$web_search", raw)]),
        Reply(reasoning="Got results.", content="Found it."),
    )
    run = k2nb.run("What is new?", shell=shell, search="moonshot", tools="web")
    declared = k2env.requests[0]["tools"]
    assert {"type": "builtin_function", "function": {"name": "$web_search"}} in declared
    assert "web_search" not in [t["function"]["name"] for t in declared]
    echoed = tool_messages(k2env.requests[1])[0]
    assert echoed["content"] == raw and echoed["name"] == "$web_search"
    assert run.ok and k2env.errors == []


def test_no_search_provider_is_a_clear_observation(shell, k2env):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("web_search", {"query": "k2 thinking"})]),
              Reply(reasoning="r2", content="No search available."))
    run = k2nb.run("search", shell=shell, search="none")
    text = tool_messages(k2env.requests[1])[0]["content"]
    assert text.startswith("No search provider is configured for web_search")
    assert "fetch_url" in text and run.tool_calls[0].is_error


def test_searxng_provider_against_a_local_instance(shell, k2env, site):
    _, base = site
    k2env.add(Reply(reasoning="r", tool_calls=[Call("web_search",
                                                    {"query": "moe", "max_results": 3})]),
              Reply(reasoning="r2", content="ok"))
    k2nb.run("search", shell=shell, search=f"searxng:{base}")
    text = tool_messages(k2env.requests[1])[0]["content"]
    assert text.splitlines()[:3] == ["1. Result 1 for moe", "   https://example.org/1",
                                     "   Snippet 1 about moe."]
    assert "3. Result 3" in text and "4. Result 4" not in text


def test_custom_search_provider(shell, k2env):
    class Catalogue:
        name = "catalogue"

        def search(self, query: str, max_results: int) -> list[SearchResult]:
            if query == "boom":
                raise RuntimeError("index offline")
            return [SearchResult("Internal wiki: " + query, "https://wiki.local/x", "hit")]

    k2nb.set_search_provider(Catalogue())
    try:
        k2env.add(Reply(reasoning="r", tool_calls=[Call("web_search", {"query": "vacation"}),
                                                   Call("web_search", {"query": "boom"})]),
                  Reply(reasoning="r2", content="ok"))
        k2nb.run("search", shell=shell)
    finally:
        k2nb.set_search_provider(None)
    first, second = (m["content"] for m in tool_messages(k2env.requests[1]))
    assert first.startswith("1. Internal wiki: vacation\n   https://wiki.local/x")
    assert second == "The search provider `catalogue` failed: RuntimeError: index offline"


# --- the bar: a %%k2 run reads a page, then computes on its numbers ---------------------------


def test_k2_run_reads_page_then_computes(shell, k2env, site):
    _, base = site
    url = f"{base}/quarterly.html"

    def compute(body: dict[str, Any]) -> Reply:
        page = tool_messages(body)[-1]["content"]
        numbers = [int(n) for n in re.findall(r"Q\d\s*\|\s*(\d+)", page)]
        assert len(numbers) == 4, page  # the "model" must find the table in the observation
        code = f"units = {numbers}\ntotal_units = sum(units)\nprint(total_units)"
        return Reply(reasoning="I have the four quarters; sum them.",
                     tool_calls=[Call("code_interpreter", {"code": code})])

    def answer(body: dict[str, Any]) -> Reply:
        total = tool_messages(body)[-1]["content"].strip()
        return Reply(reasoning="Done.", content=f"ACME sold **{total}** units in 2025.")

    k2env.add(Reply(reasoning="Read the page first.", tool_calls=[Call("fetch_url", {"url": url})]),
              compute, answer)
    shell.run_line_magic("config", "K2Magics.private_urls = True")
    try:
        shell.run_cell_magic("k2", "--tools code,web", "How many units did ACME sell in 2025?")
    finally:
        shell.run_line_magic("config", "K2Magics.private_urls = False")
    run = shell.user_ns["_k2"]
    expected = sum(UNITS.values())
    assert run.ok and run.answer == f"ACME sold **{expected}** units in 2025."
    assert shell.user_ns["total_units"] == expected
    names = [t["function"]["name"] for t in k2env.requests[0]["tools"]]
    assert names == ["code_interpreter", "read_output", "web_search", "fetch_url"]
    assert tool_messages(k2env.requests[1])[0]["content"].startswith(
        "Title: ACME quarterly units\n")
    assert k2env.errors == []


def test_search_tool_follows_the_setting():
    from k2nb.tools.web import DuckDuckGoSearch, MoonshotWebSearch, SearxngSearch, search_tool

    builtin = search_tool("moonshot")
    assert isinstance(builtin, MoonshotWebSearch)
    assert builtin.declaration() == {"type": "builtin_function",
                                     "function": {"name": "$web_search"}}
    auto = search_tool("auto")
    assert auto.name == "web_search" and isinstance(auto.provider, DuckDuckGoSearch)
    assert isinstance(search_tool("searxng:http://s:8080").provider, SearxngSearch)
    assert search_tool("none").provider is None

    class Mine:
        name = "mine"

        def search(self, query: str, max_results: int) -> list:
            return []

    mine = Mine()
    assert search_tool("auto", custom=mine).provider is mine
    assert isinstance(search_tool("duckduckgo", custom=mine).provider, DuckDuckGoSearch)
    with pytest.raises(ValueError, match="search must be auto, moonshot"):
        search_tool("bing")
    with pytest.raises(TypeError, match="needs a `name` and a `search"):
        k2nb.set_search_provider(object())


def _tls_files(tmp_path, hostname: str) -> tuple[str, str, str]:
    """A throwaway CA and a certificate for ``hostname`` signed by it (PEM paths)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k2nb test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem")]
    Path(paths[0]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths[1]).write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    Path(paths[2]).write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return paths[0], paths[1], paths[2]


@pytest.mark.parametrize("cert_host, ok", [("secure.test", True), ("other.test", False)])
def test_https_through_the_checked_address_keeps_certificate_checks(site, tmp_path, monkeypatch,
                                                                    cert_host, ok):
    import ssl

    routes, _ = site
    ca, cert, key = _tls_files(tmp_path, cert_host)
    httpd = serve(routes.handle)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
        "127.0.0.1" if host == "secure.test" else host, *a, **k))
    monkeypatch.setenv("SSL_CERT_FILE", ca)
    url = f"https://secure.test:{httpd.server_address[1]}/quarterly.html"
    try:
        if ok:  # SNI and hostname verification use the name, the connection the checked address
            assert fetch(url, FetchPolicy(allowed_hosts=("127.0.0.1/32",))).title == (
                "ACME quarterly units")
        else:
            with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                fetch(url, FetchPolicy(allowed_hosts=("127.0.0.1/32",)))
    finally:
        httpd.shutdown()
