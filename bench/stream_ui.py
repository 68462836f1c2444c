"""How much the live view costs while a model streams: messages, bytes and kernel CPU.

Starts a real kernel (jupyter_client), streams N synthetic thinking tokens at a given rate from a
zero-latency source through the view, and reads what came out on iopub. The same stream is run
with the UI off (a subscriber that does nothing) to give the kernel-side cost as a ratio.

    python bench/stream_ui.py                      # 5,000 tokens at 1,000 tokens/s, widgets
    python bench/stream_ui.py --tokens 100000 --rate 0       # full speed
    python bench/stream_ui.py --mode plain --rate 2000

Printed: widget (comm) messages per second of run time, all messages the view caused per second,
bytes of message content, and the UI's kernel CPU: as a share of the run's wall time (what a
paced stream loses to the UI) and as a ratio of CPU with the UI to CPU without it. At full speed
(--rate 0) the wall-time ratio is the slowdown of the stream itself.
"""

from __future__ import annotations

import argparse
import json
import sys

from k2nb.ui.synthetic import Execution, KernelProbe

CODE = """
import json, time
from k2nb.ui import make_view
from k2nb.ui.synthetic import stream_run
subscriber = (lambda event: None) if {mode!r} == "off" else make_view(30, mode={mode!r})
cpu, wall = time.process_time(), time.perf_counter()
stream_run(subscriber, {tokens}, rate={rate})
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print("K2BENCH" + json.dumps({{"cpu": cpu, "wall": wall}}))
"""

VIEW_TYPES = ("display_data", "update_display_data", "comm_open", "comm_msg", "comm_close")


def measure(probe: KernelProbe, mode: str, tokens: int, rate: float) -> dict[str, float]:
    run: Execution = probe.execute(CODE.format(mode=mode, tokens=tokens, rate=rate))
    if run.reply["status"] != "ok":
        raise SystemExit(f"the stream failed in the kernel: {run.reply}")
    texts = [m["content"]["text"] for m in run.of_type("stream")]
    timing = json.loads(
        next(line for t in texts for line in t.splitlines() if line.startswith("K2BENCH"))[
            len("K2BENCH") :
        ]
    )
    view_messages = run.of_type(*VIEW_TYPES)
    if mode == "plain":
        view_messages += [m for m in run.of_type("stream") if "K2BENCH" not in m["content"]["text"]]
    return {
        "seconds": run.seconds,
        "widget": len(run.widget_messages),
        "view": len(view_messages),
        "bytes": sum(len(json.dumps(m["content"], default=str)) for m in view_messages),
        "cpu": timing["cpu"],
        "wall": timing["wall"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="tokens/s; 0 = full speed")
    parser.add_argument("--mode", default="widgets", choices=("widgets", "html", "plain"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median is kept")
    args = parser.parse_args(argv)

    with KernelProbe() as probe:
        probe.execute("import k2nb.ui, k2nb.ui.live, k2nb.ui.widgets, ipywidgets")
        measure(probe, args.mode, 200, 0)  # warm up: imports, shared widgets, first renders
        runs = {"on": [], "off": []}
        for _ in range(args.repeat):
            runs["off"].append(measure(probe, "off", args.tokens, args.rate))
            runs["on"].append(measure(probe, args.mode, args.tokens, args.rate))

    def median(side: str, key: str) -> float:
        values = sorted(r[key] for r in runs[side])
        return values[len(values) // 2]

    on = {k: median("on", k) for k in runs["on"][0]}
    off = {k: median("off", k) for k in runs["off"][0]}
    rate = "full speed" if not args.rate else f"{args.rate:,.0f} tokens/s"
    extra_cpu = on["cpu"] - off["cpu"]
    print(
        f"{args.tokens:,} thinking tokens at {rate}, view: {args.mode} "
        f"(median of {args.repeat}, real kernel via jupyter_client)"
    )
    print(f"  run time                {on['seconds']:.2f} s (UI off: {off['seconds']:.2f} s)")
    print(f"  widget messages         {on['widget']:.0f}  = {on['widget'] / on['seconds']:.1f}/s")
    print(f"  all view messages       {on['view']:.0f}  = {on['view'] / on['seconds']:.1f}/s")
    print(f"  bytes sent              {on['bytes']:,.0f}  ({on['bytes'] / args.tokens:.1f}/token)")
    print(
        f"  kernel CPU              {on['cpu'] * 1000:.1f} ms with UI, "
        f"{off['cpu'] * 1000:.1f} ms without: ratio {on['cpu'] / off['cpu']:.2f}"
    )
    print(f"  UI CPU / run wall time  {100 * extra_cpu / on['wall']:.2f} %")
    print(f"  stream wall time ratio  {on['wall'] / off['wall']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
