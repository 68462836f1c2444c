"""What the model reads back from code_interpreter, for each kind of output."""

from __future__ import annotations

import pytest

from k2nb.tools.interpreter.code_interpreter import CodeInterpreter
from k2nb.tools.observation import OutputStore, cap, image_size
from k2nb.tools.read_output import ReadOutput


def run(interp, code, call_id="functions.code_interpreter:0"):
    return interp.invoke(call_id, {"code": code})


def test_stdout_stderr_and_result(interp, shell):
    out = run(interp, "import sys\nprint('to stdout')\nprint('oops', file=sys.stderr)\n6 * 7")
    assert out.observation.splitlines() == ["to stdout", "[stderr]", "oops", "42"]
    assert [o["output_type"] for o in out.outputs] == ["stream", "stream", "execute_result"]
    assert out.outputs[2]["data"]["text/plain"] == "42"
    assert out.outputs[2]["execution_count"] == out.execution_count
    assert shell.user_ns["Out"][out.execution_count] == 42  # Out/_ behave like a user cell
    assert shell.user_ns["_"] == 42


def test_namespace_is_the_users(interp, shell):
    shell.user_ns["mine"] = 5
    out = run(interp, "theirs = mine * 2\ntheirs")
    assert out.observation == "10"
    assert shell.user_ns["theirs"] == 10
    assert shell.user_ns["In"][-1] == "theirs = mine * 2\ntheirs"


def test_magics_work(interp):
    out = run(interp, "%time x = sum(range(10))\nx")
    assert "45" in out.observation


def test_dataframe_is_summarised_not_dumped(interp):
    out = run(interp, "import pandas as pd\nimport numpy as np\n"
                      "big = pd.DataFrame({'a': np.arange(1000), 'b': np.arange(1000) * 0.5, "
                      "'c': ['x'] * 1000})\nbig.loc[3, 'b'] = None\nbig")
    obs = out.observation
    assert obs.startswith("DataFrame: 1000 rows × 3 columns")
    assert "a: int64" in obs and "b: float64 (1 null)" in obs
    assert "First 5 rows:" in obs
    assert "<table" not in obs and len(obs) < 800
    # The user still gets the full rich output.
    assert "text/html" in out.outputs[0]["data"]


def test_display_of_dataframe_and_series(interp):
    out = run(interp, "import pandas as pd\ns = pd.Series([1, 2, 3], name='n')\n"
                      "display(pd.DataFrame({'k': [1, 2]}))\ns")
    assert "DataFrame: 2 rows × 1 columns" in out.observation
    assert "Series 'n': 3 values, dtype int64" in out.observation


def test_image_becomes_a_description(interp):
    out = run(interp, "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
                      "from IPython.display import Image, display\nimport io\n"
                      "fig = plt.figure(figsize=(4, 3), dpi=100)\nplt.plot([1, 2, 3])\n"
                      "buf = io.BytesIO()\nfig.savefig(buf, format='png')\n"
                      "display(Image(buf.getvalue()))")
    assert "[image/png 400×300 shown to the user]" in out.observation
    assert any("image/png" in o.get("data", {}) for o in out.outputs)


def test_html_only_output_is_read_as_text(interp):
    out = run(interp, "from IPython.display import HTML\nHTML('<b>Total</b>: <i>12</i>')")
    assert out.observation == "Total: 12"


def test_error_keeps_type_message_and_cell_frames(interp):
    out = run(interp, "def ratio(a, b):\n    return a / b\n\nratio(1, 0)")
    assert out.is_error and out.status == "error"
    obs = out.observation
    assert obs.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "return a / b" in obs and "ratio(1, 0)" in obs
    assert "interactiveshell.py" not in obs
    assert out.outputs[-1]["output_type"] == "error"
    assert out.outputs[-1]["ename"] == "ZeroDivisionError"


def test_syntax_error(interp):
    out = run(interp, "def broken(:\n    pass")
    assert out.is_error and "SyntaxError" in out.observation


def test_long_output_is_capped_and_pageable(interp):
    out = run(interp, "for i in range(2000):\n    print(f'line {i:04d}')")
    obs = out.observation
    assert "line 0000" in obs and "line 1999" in obs  # head and tail
    assert "chars omitted …]" in obs and "read_output" in obs
    assert len(obs) < 2600
    page = ReadOutput(interp.store).invoke("x", {"call_id": "functions.code_interpreter:0",
                                                 "offset": 7000, "length": 100})
    assert page.observation.startswith("[chars 7000–7100 of ")
    assert "line 0700" in page.observation
    # Every line the code printed is reachable through the pager.
    assert len(interp.store.texts["functions.code_interpreter:0"]) == 2000 * 10 - 1


def test_secrets_are_redacted(interp, shell):
    shell.user_ns["token"] = "sk-test-0123456789abcdef"
    out = run(interp, "print('key is', token)\nprint('other sk-live-ABCDEFGHIJKLMNOPQRSTUV')")
    assert "0123456789abcdef" not in out.observation
    assert "ABCDEFGHIJKLMNOP" not in out.observation
    assert out.observation.count("[redacted]") == 2


def test_no_output(interp):
    assert run(interp, "x = 1").observation == "(the code ran and produced no output)"


def test_binary_garbage_is_escaped(interp):
    out = run(interp, "print('a\\x00b\\x1b[31mred\\x1b[0m')")
    assert out.observation == "a\\x00bred"


def test_timeout_interrupts_runaway_code(shell):
    interp = CodeInterpreter(shell, OutputStore(), timeout=0.5)
    out = interp.invoke("c1", {"code": "import time\nprint('start')\nwhile True:\n"
                                       "    try:\n        time.sleep(0.01)\n"
                                       "    except Exception:\n        pass"})
    assert out.status == "timeout" and out.is_error
    assert out.observation.startswith("Timed out after 0.5 s")
    assert "start" in out.observation
    assert out.duration_s < 3
    assert interp.invoke("c2", {"code": "1 + 1"}).observation == "2"  # kernel still usable


def test_keyboard_interrupt_is_a_stop_not_an_observation(interp):
    with pytest.raises(KeyboardInterrupt):
        run(interp, "raise KeyboardInterrupt")


def test_cap_marker():
    text = "a" * 100 + "b" * 100
    capped = cap(text, 50)
    assert capped.startswith("a" * 35) and capped.endswith("b" * 15)
    assert "[… 150 chars omitted …]" in capped
    assert cap("short", 50) == "short"


def test_image_size_png_header():
    import base64
    import struct

    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", 640, 480)
    assert image_size("image/png", base64.b64encode(header + b"\x00" * 10).decode()) == (640, 480)
