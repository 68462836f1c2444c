"""Generated code that would hang, kill, flood or wipe the kernel is contained and explained."""

from __future__ import annotations

import os

import pytest

from k2nb.tools.interpreter.code_interpreter import CodeInterpreter
from k2nb.tools.observation import OutputStore


def run(interp, code):
    return interp.invoke("c", {"code": code})


@pytest.mark.parametrize("code, expected", [
    ("name = input('Your name? ')", "Refused: input() is not available to the agent's code"),
    ("import getpass\ngetpass.getpass()", "Refused: getpass() is not available"),
    ("exit()", "Refused: exit()/quit() would shut down the user's kernel"),
    ("quit()", "Refused: exit()/quit() would shut down the user's kernel"),
    ("import os\nos._exit(1)", "Refused: os._exit() would kill the user's kernel"),
    ("%reset -f", "Refused: %reset would erase the user's variables"),
    ("import sys\nsys.exit(3)", "The code called sys.exit(3); the kernel keeps running."),
])
def test_dangerous_calls_are_refused_and_explained(interp, shell, code, expected):
    shell.user_ns["precious"] = 42
    out = run(interp, code)
    assert out.is_error, out.observation
    assert expected in out.observation
    assert shell.user_ns["precious"] == 42
    assert run(interp, "precious + 1").observation == "43"  # the kernel is still fine
    import builtins

    assert builtins.input.__module__ != "k2nb.tools.interpreter.guards"  # guards removed afterwards
    assert os._exit.__module__ != "k2nb.tools.interpreter.guards"


def test_fifty_megabytes_of_output(interp, capsys):
    out = run(interp, "chunk = 'x' * 1_000_000\nfor _ in range(50):\n    print(chunk)")
    shown = capsys.readouterr().out
    assert len(shown) < 2_100_000  # the user's frontend is not flooded
    assert "output shortened for display" in shown
    assert "more chars of output were discarded" in out.observation
    assert len(out.observation) < 9000
    assert sum(len(o.get("text", "")) for o in out.outputs) <= 4_000_000


def test_binary_garbage(interp):
    out = run(interp, "import sys\nsys.stdout.write(bytes(range(256)).decode('latin-1'))")
    assert "\\x00" in out.observation and "\\x1b" in out.observation
    assert out.status == "ok"


def test_secret_environment_values_never_reach_model_or_outputs(shell, monkeypatch, capsys):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-very-secret-value-123")
    from k2nb.tools.observation import secret_values

    interp = CodeInterpreter(shell, OutputStore(), secrets=secret_values())
    out = run(interp, "import os\nprint(os.environ)\ndisplay({'t': os.environ['MY_SERVICE_TOKEN']})\n"
                      "os.environ['MY_SERVICE_TOKEN']")
    assert "tok-very-secret-value-123" not in out.observation
    assert "tok-very-secret-value-123" not in str(out.outputs)
    assert "tok-very-secret-value-123" not in capsys.readouterr().out
    assert out.observation.count("[redacted]") >= 3
