"""`charchat serve` as a person runs it: in a real pseudo-terminal, where Ctrl+C stops the
server and every open stream still gets its final event; the warning for a non-loopback
address; one line when the serve extra is missing or the port is taken."""

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pexpect
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


def spawn_server(model_path, tmp_path, *args):
    environment = os.environ | {"XDG_DATA_HOME": str(tmp_path / "data"), "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "charchat", "serve", "-m", str(model_path), "--port", "0", *args],
        env=environment,
        timeout=60,
        encoding="utf-8",
    )
    child.expect(r"charchat serve: http://([\d.]+):(\d+)/ \(models: ([^)]*)\); Ctrl\+C stops")
    return child, int(child.match.group(2)), child.match.group(3)


def test_ctrl_c_in_a_terminal_gives_open_streams_their_final_event(tiny_model_path, tmp_path):
    child, port, names = spawn_server(tiny_model_path, tmp_path)
    assert "tiny" in names.split(", ")
    events, started = [], threading.Event()

    def stream() -> None:
        body = {"model": "tiny", "prompt": "the", "max_tokens": 100_000, "stream": True}
        url = f"http://127.0.0.1:{port}/v1/completions"
        with httpx.stream("POST", url, json=body, timeout=60) as answer:
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    started.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(60)
    child.send("\x03")  # a person pressing Ctrl+C
    reader.join(60)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in child.before
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["charchat_reason"] == "shutdown"
    assert len(events) < 100_000


def test_a_public_address_is_served_with_a_warning(tiny_model_path, tmp_path):
    child, port, _ = spawn_server(tiny_model_path, tmp_path, "--host", "0.0.0.0")
    child.expect(r"warning: listening on 0\.0\.0\.0: anyone who can reach this machine")
    child.expect(r"no --api-key set")
    assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).status_code == 200
    child.send("\x03")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in child.before


def run_serve(*args, before: str = "", tmp_path=None) -> subprocess.CompletedProcess:
    code = f"import sys; {before}sys.argv = ['charchat', 'serve', *{list(args)!r}]\n"
    code += "from charchat.cli import main; main()"
    environment = os.environ | ({"XDG_DATA_HOME": str(tmp_path)} if tmp_path else {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environment
    )


def test_without_the_serve_extra_one_line_says_how_to_get_it():
    done = run_serve(before="sys.modules['starlette'] = sys.modules['uvicorn'] = None; ")
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "charchat: error: charchat serve needs the serve extra: pip install 'charchat[serve]'"
    ]


def test_a_taken_port_or_a_bad_option_is_one_line(tiny_model_path, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve("-m", str(tiny_model_path), "--port", str(port), tmp_path=tmp_path)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert re.search(rf"cannot listen on 127\.0\.0\.1:{port}", done.stderr)
    for bad in (["--max-streams", "0"], ["--port", "70000"], ["-m", "no-such-model"]):
        done = run_serve(*bad, tmp_path=tmp_path)
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
