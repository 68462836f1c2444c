"""How big a long run leaves its ``%%k2`` cell: bytes of the cell's outputs as saved in the .ipynb.

A 300-step scripted run (1,500 characters of thinking and ~4,000 printed characters per step) in
a real kernel driven by nbclient, twice:

- **extension present**: before the run, the client opens a comm on target ``k2nb`` with the
  lab extension's hello (what the extension does when it connects), and while the run goes it
  moves each call's outputs out of the ``%%k2`` cell the way the extension does (everything
  without ``metadata.k2nb`` between a call's ``tool_call_started`` and ``tool_call_finished``
  goes to the call's own cell; those bytes are counted apart);
- **no extension**: no hello, nothing moved: the calls' outputs are the cell's own.

    python bench/cell_outputs.py                        # 300 steps, targets 2 MB / 4 MB
    python bench/cell_outputs.py --steps 60 --save /tmp/cells     # keep the notebooks
    python bench/cell_outputs.py --baseline /path/to/an/earlier/checkout

``--baseline`` measures another checkout of k2nb in the same conditions (its kernel imports k2nb
from there) and prints the ratio. Measured on the development machine (baseline: the rendering
before the call lines): extension present 6.12 MB → 1.67 MB, no extension 7.33 MB → 3.79 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"extension": 2_000_000, "plain": 4_000_000}
INHERITED_PATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
HELLO = {"type": "hello", "version": 1, "features": ["real_cells", "approval_dialog"]}


def saved_bytes(outputs: list[Any]) -> int:
    """Bytes of these outputs in an .ipynb file (nbformat writes indent=1, UTF-8)."""
    return len(json.dumps(outputs, indent=1, sort_keys=True, ensure_ascii=False).encode())


def client_class() -> type:
    from nbclient import NotebookClient

    class ExtensionLikeClient(NotebookClient):
        """nbclient that, with ``claim`` set, takes each call's outputs out of the running cell
        the way the lab extension does (they would be in the call's own cell)."""

        claim = False
        claimed: ClassVar[list[Any]] = []
        _in_call = False

        def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
            if msg["msg_type"] in ("comm_open", "comm_msg", "comm_close"):
                kind = (msg["content"].get("data") or {}).get("type")
                if kind == "tool_call_started":
                    self._in_call = True
                elif kind in ("tool_call_finished", "run_finished") or (
                        msg["msg_type"] == "comm_close"):
                    self._in_call = False
            return super().process_message(msg, cell, cell_index)

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            metadata = msg["content"].get("metadata") or {}
            if self.claim and self._in_call and "k2nb" not in metadata:
                from nbformat.v4 import output_from_msg

                self.claimed.append(output_from_msg(msg))
                return None
            return super().output(outs, msg, display_id, cell_index)

    return ExtensionLikeClient


def measure(steps: int, extension: bool, workdir: Path, save: Path | None) -> dict[str, Any]:
    """Run the long run in a fresh kernel; the %%k2 cell's saved bytes and what it took."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext k2nb"),
        nbformat.v4.new_code_cell(f"%%k2 --max-steps {steps}\n"
                                  "Check every part of the data, one step at a time."),
    ]
    client = client_class()(nb, timeout=3600, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.claim = extension
    client.claimed = []
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        if extension:
            kc = client.kc
            kc.shell_channel.send(kc.session.msg("comm_open", {
                "comm_id": uuid.uuid4().hex, "target_name": "k2nb", "data": HELLO}))
        client.execute_cell(nb.cells[1], 1)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / f"{'extension' if extension else 'plain'}.ipynb")
    cell = nb.cells[1]
    return {
        "bytes": saved_bytes(cell.outputs),
        "outputs": len(cell.outputs),
        "claimed": saved_bytes(client.claimed),
        "errors": [o for o in cell.outputs if o["output_type"] == "error"],
        "answered": any("Done after" in json.dumps(o.get("data", {})) for o in cell.outputs),
    }


def run_case(code: str, case: str, args: argparse.Namespace, save: Path | None) -> dict:
    """One long run with the kernel importing k2nb from ``code``."""
    from k2nb.testing import ScriptedServer
    from k2nb.testing.long_run import LongRunModel

    os.environ["PYTHONPATH"] = os.pathsep.join([code, *INHERITED_PATH])
    model = LongRunModel(steps=args.steps - 1, thinking=args.thinking, output=args.output)
    with ScriptedServer([model] * (args.steps * 3), api_key="bench") as server:
        os.environ.update(K2NB_API_KEY="bench", K2NB_BASE_URL=server.base_url)
        workdir = Path(tempfile.mkdtemp(prefix="k2nb-cells-"))
        result = measure(args.steps, case == "extension", workdir, save)
    if not result["answered"] or result["errors"]:
        print(f"  the run with {code} did not end with its answer: {result['errors'][:1]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps, the answer included")
    parser.add_argument("--thinking", type=int, default=1500, help="characters of thinking/step")
    parser.add_argument("--output", type=int, default=4000, help="characters printed per step")
    parser.add_argument("--code", default=str(ROOT), help="the k2nb checkout the kernel runs")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="also measure this checkout of k2nb (e.g. an earlier revision)")
    parser.add_argument("--only", choices=("extension", "plain"), help="measure one case")
    parser.add_argument("--save", metavar="DIR", help="write each case's notebook there")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    code = str(Path(args.code).resolve())
    baseline = str(Path(args.baseline).resolve()) if args.baseline else None
    print(f"k2nb from {code}" + (f", against {baseline}" if baseline else "")
          + f"; {args.steps} steps, {args.thinking:,} chars of thinking and "
          f"~{args.output:,} printed chars per step")
    for case in [args.only] if args.only else ["extension", "plain"]:
        save = Path(args.save) if args.save else None
        result = run_case(code, case, args, save)
        target = TARGETS[case]
        label = "extension present" if case == "extension" else "no extension     "
        verdict = "ok" if result["bytes"] <= target else "OVER"
        line = (f"{label}: %%k2 cell outputs {result['bytes'] / 1e6:5.2f} MB "
                f"({result['outputs']} outputs; target ≤ {target / 1e6:.0f} MB: {verdict}")
        if baseline:
            before = run_case(baseline, case, args, None)
            line += (f"; baseline {before['bytes'] / 1e6:.2f} MB, "
                     f"{result['bytes'] / before['bytes']:.2f}×")
        line += ")"
        if case == "extension":
            line += f"; moved to the calls' cells: {result['claimed'] / 1e6:.2f} MB"
        print(line, flush=True)


if __name__ == "__main__":
    main()
