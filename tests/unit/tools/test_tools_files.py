"""read_file / list_files: confined to the notebook's folder, paged, honest about binaries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import k2nb
from k2nb.testing import Call, Reply
from k2nb.tools.files import ListFiles, ReadFile
from k2nb.tools.observation import OutputStore


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_read_and_list_in_a_run(shell, k2env, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text("region,units\nnorth,120\nsouth,80\n")
    (tmp_path / "notes.md").write_text("# Notes\nCheck the south region.\n")
    k2env.add(
        Reply(reasoning="Look around.", tool_calls=[
            Call("list_files", {"dir": ".", "recursive": True}),
            Call("read_file", {"path": "data/sales.csv"}),
        ]),
        Reply(reasoning="r", content="North sold 120."),
    )
    run = k2nb.run("What is in my folder?", shell=shell, tools="files")
    listing, csv = (m["content"] for m in tool_messages(k2env.requests[1]))
    assert listing.splitlines()[0] == "./ (4 entries)"  # .k2nb/ (transcripts) is not walked
    assert ".k2nb/" in listing and ".k2nb/runs" not in listing
    assert "data/" in listing and "data/sales.csv  32 B" in listing and "notes.md" in listing
    assert csv == "File: data/sales.csv (4 lines, 32 chars)\n\nregion,units\nnorth,120\nsouth,80\n"
    names = [t["function"]["name"] for t in k2env.requests[0]["tools"]]
    assert names == ["read_output", "read_file", "list_files"]
    assert run.ok


def test_paths_outside_the_folder_are_refused(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "private.txt").write_text("secret")
    os.symlink(tmp_path / "private.txt", root / "link.txt")
    reader = ReadFile(root, OutputStore())
    for path in ("../private.txt", str(tmp_path / "private.txt"), "link.txt", "/etc/passwd"):
        outcome = reader.invoke("c", {"path": path})
        assert outcome.is_error, path
        assert "outside the notebook's working directory" in outcome.observation
        assert "secret" not in outcome.observation
    lister = ListFiles(root)
    outcome = lister.invoke("c", {"dir": "..", "recursive": False})
    assert outcome.is_error and "outside" in outcome.observation


def test_widened_root_allows_the_parent(tmp_path):
    (tmp_path / "private.txt").write_text("visible now")
    (tmp_path / "project").mkdir()
    outcome = ReadFile(tmp_path, OutputStore()).invoke("c", {"path": "project/../private.txt"})
    assert not outcome.is_error and "visible now" in outcome.observation


def test_large_file_is_shortened_and_pageable(tmp_path):
    lines = [f"line {i}: value {i * 3}" for i in range(5000)]
    (tmp_path / "log.txt").write_text("\n".join(lines))
    store = OutputStore()
    outcome = ReadFile(tmp_path, store, observation_chars=2000).invoke("c7", {"path": "log.txt"})
    assert "line 0: value 0" in outcome.observation and "line 4999" not in outcome.observation
    assert 'read_output(call_id="c7", offset=N)' in outcome.observation
    full = store.texts["c7"]
    assert store.page("c7", len(full) - 30).count("line 4999: value 14997") == 1


def test_binary_missing_folder_and_pdf(tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "sub").mkdir()
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "Paper title\nResult: accuracy 91.5 percent")
    (tmp_path / "paper.pdf").write_bytes(bytes(pdf.output()))
    reader = ReadFile(tmp_path, OutputStore())
    blob = reader.invoke("a", {"path": "blob.bin"})
    assert blob.is_error and "binary file (300 B)" in blob.observation
    missing = reader.invoke("b", {"path": "nope.txt"})
    assert missing.is_error and "list_files" in missing.observation
    folder = reader.invoke("c", {"path": "sub"})
    assert folder.is_error and "is a folder" in folder.observation
    paper = reader.invoke("d", {"path": "paper.pdf"})
    assert not paper.is_error and "accuracy 91.5 percent" in paper.observation


def test_recursive_listing_skips_tool_folders(tmp_path: Path):
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    (tmp_path / ".git" / "objects" / "x").write_text("x")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    text = ListFiles(tmp_path).invoke("c", {"dir": ".", "recursive": True}).observation
    assert "src/a.py  9 B" in text and ".git/" in text and "objects" not in text


def test_tools_default_from_config(shell, k2env):
    shell.run_line_magic("config", 'K2Magics.tools = "files"')
    try:
        k2env.add(Reply(reasoning="r", content="ok"), Reply(reasoning="r", content="ok"))
        shell.run_cell_magic("k2", "", "list my files")
        shell.run_cell_magic("k2", "--tools code", "now only code")
    finally:
        shell.run_line_magic("config", 'K2Magics.tools = "code,web,files,mcp"')
    first, second = ([t["function"]["name"] for t in r["tools"]] for r in k2env.requests)
    assert first == ["read_output", "read_file", "list_files"]
    assert second == ["code_interpreter", "read_output"]  # the option outranks %config
