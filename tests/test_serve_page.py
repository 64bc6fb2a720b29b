"""The page at / in a real headless chromium: it loads with nothing fetched from elsewhere,
a typed prompt streams, a click on the temperature slider mid-stream changes the temperature
of the characters that follow (and of none before), and stop and undo do what they say."""

import json
import re

import pytest

pytest.importorskip("uvicorn")
from browser import BROWSER, Browser  # noqa: E402
from conftest import random_model  # noqa: E402
from live_server import live_server, wait_until  # noqa: E402

from charchat.serve.wire import PAGE_ALTERNATIVES  # noqa: E402

pytestmark = pytest.mark.skipif(BROWSER is None, reason="needs a headless chromium")

SPANS = "[...document.querySelectorAll('#text span.g')]"


def centre(browser: Browser, selector: str, across: float = 0.5) -> tuple[float, float]:
    box = browser.evaluate(
        f"JSON.stringify(document.querySelector({json.dumps(selector)}).getBoundingClientRect())"
    )
    box = json.loads(box)
    return box["left"] + box["width"] * across, box["top"] + box["height"] / 2


def test_the_page_streams_and_its_slider_acts_on_the_next_characters(tmp_path):
    with live_server({"tiny": random_model()}) as (url, serving):
        browser = Browser(f"{url}/", tmp_path / "profile")
        try:
            browser.wait_for("document.getElementById('model').options.length === 1")
            browser.evaluate("document.getElementById('pace').value = '40'")
            browser.click(*centre(browser, "#prompt"))
            browser.type("the will")
            browser.press_enter()
            browser.wait_for(f"{SPANS}.length >= 10")
            assert browser.evaluate("document.querySelector('#text .prompt').textContent") == (
                "the will"
            )

            before = browser.evaluate(f"{SPANS}.length")
            browser.click(*centre(browser, "#temp", across=0.75))  # a person's click on the slider
            chosen = browser.evaluate("document.getElementById('temp').value")
            assert 1.3 <= float(chosen) <= 1.7
            browser.wait_for(f"{SPANS}.length >= {before + 20}")
            temperatures = browser.evaluate(f"{SPANS}.map(s => Number(s.dataset.t))")
            first_new = temperatures.index(float(chosen))
            assert set(temperatures[:first_new]) == {0.8} and first_new >= before
            assert set(temperatures[first_new:]) == {float(chosen)}
            assert first_new <= before + 10  # the very next characters, not a later turn

            alternatives = browser.evaluate(f"{SPANS}.at(-1).dataset.alternatives").split("\n")
            assert len(alternatives) == 5
            bars = browser.evaluate("document.querySelectorAll('#bars .bar').length")
            assert bars == PAGE_ALTERNATIVES  # the chart: the likeliest next characters
            entropy = browser.evaluate("document.getElementById('entropy').textContent")
            assert entropy.startswith("entropy: ") and f"T {chosen}" in entropy.replace(".50", ".5")

            browser.evaluate("document.getElementById('mode').focus()")
            browser.press("ArrowDown", 40)  # sample -> greedy, from the keyboard
            assert browser.evaluate("document.getElementById('mode').value") == "greedy"
            changed = browser.evaluate(f"{SPANS}.length")
            browser.wait_for(f"{SPANS}.length >= {changed + 20}")
            modes = browser.evaluate(f"{SPANS}.map(s => s.dataset.mode)")
            first_greedy = modes.index("greedy")
            assert set(modes[:first_greedy]) == {"sample"} and set(modes[first_greedy:]) == {
                "greedy"
            }
            assert changed <= first_greedy <= changed + 10

            browser.click(*centre(browser, "#stop"))
            browser.wait_for("document.getElementById('status').textContent === 'stopped'")
            stopped = browser.evaluate(f"{SPANS}.length")
            assert browser.evaluate("document.getElementById('stop').disabled")
            assert wait_until(lambda: serving.open_streams == 0)
            browser.click(*centre(browser, "#continue"))  # from the text as it stands...
            browser.wait_for(f"{SPANS}.length >= {stopped + 5}")
            status = browser.evaluate("document.getElementById('status').textContent")
            read = re.fullmatch(r"writing \((\d+) of (\d+) read from cache\)", status)
            assert read and read[1] == read[2] == str(len("the will") + stopped)  # ...not reread
            browser.click(*centre(browser, "#stop"))
            browser.wait_for("document.getElementById('status').textContent === 'stopped'")
            browser.click(*centre(browser, "#undo"))  # the continuation goes
            assert browser.evaluate(f"{SPANS}.length") == stopped
            browser.click(*centre(browser, "#undo"))
            assert browser.evaluate("document.getElementById('text').textContent") == ""
            assert stopped >= before + 20

            fetched = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
            assert fetched and all(name.startswith(url) for name in fetched)
        finally:
            browser.close()
    assert serving.open_streams == 0
