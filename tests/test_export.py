"""A session as a picture: /save FILE.html and FILE.svg."""

import re
import subprocess
from urllib.parse import unquote

import pytest
from browser import BROWSER, HEADLESS
from conftest import random_model
from pngfile import read_png

from charchat.chat.session import Session
from charchat.errors import CommandError


def session_with_text(**kwargs):
    session = Session(random_model(chars="abcdefgh \n\x07"), length=30, seed=1, **kwargs)
    list(session.handle("abc\x07 def"))
    return session


def test_html_keeps_the_colours_and_each_characters_alternatives(tmp_path):
    session = session_with_text()
    list(session.handle("/color on"))
    list(session.handle("/save " + str(tmp_path / "s.html")))
    html = (tmp_path / "s.html").read_text()
    links = re.findall(r'<a href="#next:([^"]*)">(.*?)</a>', html)
    assert len(links) == len(session.transcript.replace("\n", ""))  # one per character shown
    first = unquote(links[0][0]).split(" · ")
    assert len(first) == 5 and all(re.fullmatch(r"\S+ \d+%", a) for a in first)
    assert len(set(re.findall(r"color: (#[0-9a-f]{6})", html))) >= 2  # surprise colours
    assert "\x07" not in html and "␇" in html  # control characters stay escaped
    assert "a.title = decodeURIComponent" in html and session.model.name in html  # status line


def test_svg_and_the_cell_colours(tmp_path):
    session = session_with_text()
    list(session.handle("/cells 1 2"))
    list(session.handle("/save " + str(tmp_path / "s.svg")))
    svg = (tmp_path / "s.svg").read_text()
    assert svg.startswith("<svg") and "cell&#160;" in svg and "\x07" not in svg


def test_an_existing_file_or_a_directory_is_refused(tmp_path):
    session = session_with_text()
    (tmp_path / "s.html").write_text("mine")
    for target in (tmp_path / "s.html", tmp_path):
        with pytest.raises(CommandError):
            list(session.handle(f"/save {target}"))
    assert (tmp_path / "s.html").read_text() == "mine"


@pytest.mark.skipif(BROWSER is None, reason="needs a headless chromium")
def test_the_html_renders_in_a_real_browser(tmp_path):
    session = session_with_text()
    list(session.handle("/color on"))
    page = tmp_path / "s.html"
    list(session.handle(f"/save {page}"))
    browser = [BROWSER, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}"]

    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    titles = re.findall(
        r'class="alternatives" title="([^"]*)"|title="([^"]*)" class="alternatives"', dom
    )
    assert len(titles) == len(session.transcript.replace("\n", ""))  # hover text for each
    first = next(a or b for a, b in titles).split(" · ")
    assert len(first) == 5 and all(re.fullmatch(r"\S+ \d+%", a) for a in first)

    shot = tmp_path / "s.png"
    subprocess.run(
        [*browser, "--window-size=640,240", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    pixels = {bytes(p) for p in read_png(shot)[..., :3].reshape(-1, 3)}
    colours = set(re.findall(r"color: #([0-9a-f]{6})", page.read_text()))
    painted = {c for c in colours if bytes.fromhex(c) in pixels} - {"ffffff", "000000"}
    assert len(painted) >= 2, (colours, painted)  # the surprise colours reach the screen
