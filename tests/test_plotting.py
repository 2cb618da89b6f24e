"""Plotting and the scrubbers: pixel mapping, grid layout, the forward-process frames and the
static-HTML scrubber's markup, with and without its script (what an untrusted notebook shows in
JupyterLab and Notebook 7; tests/check_scrubber_in_jupyter.py checks that in Jupyter itself).
References: the data scaling p / 127.5 - 1 inverted, row-major placement by hand, and the
closed form q_sample with one noise draw.
"""

import base64
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_core import NoiseSchedule
from ddpm_core.plotting import (
    BOOK_DPI,
    BOOK_RC,
    FIG_WIDTH,
    Scrubber,
    _thumbnail_png,
    figure_scrubber,
    forward_diffusion_scrubber,
    image_grid,
    image_scrubber,
    png_bytes,
    png_size,
    show_images,
    to_uint8,
    use_book_style,
)


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_to_uint8_inverts_the_data_scaling_and_clips():
    k = torch.arange(256)
    x = (k.float() / 127.5 - 1.0).reshape(1, 1, 16, 16)  # data.py's p / 127.5 - 1, every level
    assert to_uint8(x).flatten().tolist() == list(range(256))
    assert to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0])).tolist() == [0, 0, 128, 255, 255]


def test_image_grid_places_images_row_major_with_grey_gaps():
    B, H, W, p = 5, 2, 3, 2
    levels = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    images = levels[:, None, None, None].expand(B, 1, H, W)
    grid = image_grid(images, nrow=3, padding=p)
    assert grid.shape == (2 * (H + p) + p, 3 * (W + p) + p) and grid.dtype == np.uint8
    expected = to_uint8(levels).tolist()
    for i in range(B):
        r, c = i // 3, i % 3  # row-major: image i in row i // nrow, column i % nrow
        top, left = p + r * (H + p), p + c * (W + p)
        assert (grid[top:top + H, left:left + W] == expected[i]).all(), i
    assert (grid[p + (H + p):p + (H + p) + H, p + 2 * (W + p):] == 128).all()  # empty 6th slot: grey
    assert (grid[:p] == 128).all() and (grid[:, :p] == 128).all()


def test_forward_diffusion_scrubber_frames_follow_the_closed_form_with_one_noise():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = torch.linspace(-1, 1, 2 * 16).reshape(2, 1, 4, 4)
    steps = [0, 1, 30, 100]
    sc = forward_diffusion_scrubber(s, x0, steps, seed=3, nrow=2)
    assert sc.labels == [f"t = {t}" for t in steps] and len(sc.frames) == 4
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))  # one eps for every frame
    for t, frame in zip(steps, sc.frames):
        ab = float(s.alphas_cumprod[t])  # alphabar_0 = 1: frame 0 is x_0
        x_t = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
        assert np.array_equal(decode(frame), image_grid(x_t, nrow=2)), t


def test_scrubber_shows_its_start_frame_and_checks_arguments():
    frames = [png_bytes(np.full((2, 2), v, dtype=np.uint8)) for v in (0, 100, 200)]
    sc = Scrubber(frames, ["a", "b", "c"], start=2)
    page = sc._repr_html_()
    assert 'data-frame="2"' in page and 'value="2"' in page and 'max="2"' in page
    shown = re.search(r'<img [^>]*src="data:image/png;base64,([^"]+)"', page).group(1)
    assert decode(base64.b64decode(shown))[0, 0] == 200
    assert re.search(r'class="ddpm-scrubber-label"[^>]*>c<', page)
    data = json.loads(re.search(r'class="ddpm-scrubber-data">(.*?)</script>', page).group(1))
    assert data["labels"] == ["a", "b", "c"]
    assert [decode(base64.b64decode(f))[0, 0] for f in data["images"]] == [0, 100, 200]
    with pytest.raises(ValueError, match="start must be in 0..2"):
        Scrubber(frames, ["a", "b", "c"], start=3)
    with pytest.raises(ValueError, match="labels must have one entry per frame"):
        Scrubber(frames, ["a", "b"])
    with pytest.raises(ValueError, match="frames must hold at least one"):
        Scrubber([], [])


# --------------------------------------------------------------------------------------
# The house style: text legible at the size shown, figures sharp on high-DPI screens
# --------------------------------------------------------------------------------------

TEXT_SIZES = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
              "legend.fontsize", "figure.titlesize")


def test_use_book_style_sets_legible_sizes_and_shows_figures_at_twice_the_resolution(monkeypatch):
    import IPython
    import matplotlib
    import matplotlib.pyplot as plt
    from IPython.core.formatters import PNGFormatter

    plt.get_backend()  # resolved before the stand-in shell below, which only has formatters
    png = PNGFormatter()  # what IPython (Jupyter, Colab) calls to show a figure as image/png
    monkeypatch.setattr(IPython, "get_ipython", lambda: SimpleNamespace(display_formatter=SimpleNamespace(
        formatters={"image/png": png})))
    with matplotlib.rc_context():
        use_book_style()
        assert all(matplotlib.rcParams[key] == value for key, value in BOOK_RC.items() if key != "figure.figsize")
        assert tuple(matplotlib.rcParams["figure.figsize"]) == BOOK_RC["figure.figsize"]
        # Every text size, in CSS pixels as shown (1 pt = BOOK_DPI / 72 px), is at least 13 px.
        assert min(matplotlib.rcParams[key] for key in TEXT_SIZES) * BOOK_DPI / 72 >= 13
        assert FIG_WIDTH * BOOK_DPI <= 640  # inside the book's text column, which is about 690 px
        fig, ax = plt.subplots(figsize=(4, 2))
        ax.plot([0, 1], [0, 1])
        data, metadata = png(fig)
        pixels = decode(base64.b64decode(data))
        assert set(metadata) == {"width"}  # no height: the book scales the picture evenly in a narrow column
        assert abs(pixels.shape[1] - 2 * metadata["width"]) <= 1  # twice the resolution it is shown at
        assert 0.85 * 4 * BOOK_DPI <= metadata["width"] <= 1.05 * 4 * BOOK_DPI  # about w * BOOK_DPI px (trimmed)
        assert png(plt.figure()) is None  # an empty figure shows nothing
        plt.close("all")
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # plain Python: the settings alone
    with matplotlib.rc_context():
        use_book_style()
        assert matplotlib.rcParams["font.size"] == BOOK_RC["font.size"]


def test_figure_scrubber_frames_are_drawn_at_twice_the_size_shown():
    import matplotlib.pyplot as plt

    def draw(value):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [0, value])
        return fig

    sc = figure_scrubber(draw, [1, 2], ["a", "b"])
    width, height = png_size(sc.frames[0])
    assert sc.width == round(width / 2) and 0.85 * 3 * BOOK_DPI <= sc.width <= 1.05 * 3 * BOOK_DPI
    style = parse(sc._repr_html_()).tags
    main = next(attrs for tag, attrs, _ in style if tag == "img")
    assert f"width:{sc.width}px" in main["style"] and "max-width:100%" in main["style"]
    assert "pixelated" not in main["style"]  # smooth figures are scaled smoothly
    assert plt.get_fignums() == []  # every frame's figure is closed
    assert Image.open(io.BytesIO(sc.frames[0])).mode == "P"  # stored with a palette: many frames, few bytes
    pixel_art = forward_diffusion_scrubber(NoiseSchedule.linear(10), torch.zeros(2, 1, 4, 4), [0, 10], nrow=2)
    assert "image-rendering:pixelated" in pixel_art._repr_html_()  # image grids keep their pixels sharp


def test_image_scrubber_zooms_by_whole_pixels_to_the_book_width():
    for n in (4, 8, 16):  # a row of n digits: n * (32 + 2) + 2 grid pixels
        grid_width = n * 34 + 2
        sc = image_scrubber([torch.zeros(n, 1, 32, 32)] * 2, ["a", "b"], nrow=n)
        zoom = sc.width // grid_width
        assert sc.width == zoom * grid_width and sc.width <= FIG_WIDTH * BOOK_DPI < (zoom + 1) * grid_width
    digits = torch.zeros(8, 1, 32, 32)
    assert image_scrubber([digits] * 2, ["a", "b"], zoom=3).width == 3 * 274  # a zoom asked for is kept
    with pytest.raises(ValueError, match="zoom"):
        image_scrubber([digits] * 2, ["a", "b"], zoom=0)


def test_show_images_fits_a_wide_batch_to_the_book_width():
    import matplotlib.pyplot as plt

    strip = show_images(torch.zeros(16, 1, 32, 32), nrow=16, scale=0.3)  # 546 x 36 grid pixels
    w, h = strip.figure.get_size_inches()
    assert w == pytest.approx(FIG_WIDTH) and h == pytest.approx(max(1.0, FIG_WIDTH * 36 / 546))
    small = show_images(torch.zeros(4, 1, 32, 32), nrow=4)  # 138 x 36: scale / 10 inches per pixel
    assert small.figure.get_size_inches()[0] == pytest.approx(138 * 0.25 / 10)
    plt.close("all")


# --------------------------------------------------------------------------------------
# Without its script (JupyterLab and Notebook 7 drop the scripts of an untrusted notebook)
# --------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every start tag as (tag, attributes, classes of its open ancestors and itself)."""

    VOID = {"img", "input", "br", "hr", "meta", "link", "source"}

    def __init__(self):
        super().__init__()
        self.tags, self.stack, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = {c for _, a in self.stack for c in a.get("class", "").split()} | set(attrs.get("class", "").split())
        self.tags.append((tag, attrs, classes))
        if tag not in self.VOID:
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        inside = {c for _, a in self.stack for c in a.get("class", "").split()}
        self.text.append((data, inside))


def parse(markup: str) -> _Tags:
    tags = _Tags()
    tags.feed(markup)
    return tags


def without_scripts(markup: str) -> str:
    stripped = re.sub(r"<script\b.*?</script>", "", markup, flags=re.S | re.I)
    assert "<script" not in stripped.lower()
    return stripped


def grey_frames(values, shape=(4, 6)):
    return [png_bytes(np.full(shape, v, dtype=np.uint8)) for v in values]


def test_scrubber_without_its_script_shows_the_start_frame_a_note_and_every_frame():
    sc = Scrubber(grey_frames((0, 100, 200)), ["t = 0", "t = 5", "t = 10"], title="q", start=1, width=60, strip_scale=0.5)
    tags = parse(without_scripts(sc._repr_html_()))
    images = [(attrs, classes) for tag, attrs, classes in tags.tags if tag == "img"]
    main, strip = images[0], images[1:]
    pixels = decode(base64.b64decode(main[0]["src"].removeprefix("data:image/png;base64,")))
    assert pixels[0, 0] == 100 and "ddpm-scrubber-still" not in main[1]  # the start frame, outside the strip
    # The note, inside what the script removes, says why the slider is still and how to trust.
    note = "".join(d for d, inside in tags.text if "ddpm-scrubber-note" in inside)
    assert "has not trusted" in note and "Trust Notebook" in note
    assert "File \u203a Trust Notebook" in note and "Command Palette" in note
    note_tags = [classes for tag, _, classes in tags.tags if "ddpm-scrubber-note" in classes]
    assert note_tags and all("ddpm-scrubber-still" in c for c in note_tags)
    # Every frame, in order, half size, labelled, inside a <details> that the script removes.
    assert [a["alt"] for a, _ in strip] == ["t = 0", "t = 5", "t = 10"]
    assert all({"ddpm-scrubber-still", "ddpm-scrubber-strip"} <= c for _, c in strip)
    for (attrs, _), value in zip(strip, (0, 100, 200)):
        thumb = decode(base64.b64decode(attrs["src"].removeprefix("data:image/png;base64,")))
        assert thumb.shape == (2, 3) and (thumb == value).all()
        assert "width:30px" in attrs["style"]  # half the width the picture is shown at
    summary = "".join(d for d, inside in tags.text if "ddpm-scrubber-strip" in inside)
    assert "All 3 frames" in summary
    captions = [d for d, inside in tags.text if "ddpm-scrubber-strip" in inside and d.startswith("t = ")]
    assert captions == ["t = 0", "t = 5", "t = 10"]
    # The controls are greyed out until the script enables them.
    controls = [attrs for tag, attrs, _ in tags.tags if tag in ("input", "button")]
    assert len(controls) == 2 and all("disabled" in attrs for attrs in controls)


def test_scrubber_strip_can_be_left_out_and_its_scale_is_checked():
    frames = grey_frames((0, 255))
    tags = parse(without_scripts(Scrubber(frames, ["a", "b"], strip_scale=None)._repr_html_()))
    assert [tag for tag, _, _ in tags.tags].count("img") == 1 and "details" not in [t for t, _, _ in tags.tags]
    assert "Trust Notebook" in "".join(d for d, inside in tags.text if "ddpm-scrubber-note" in inside)
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="strip_scale must be in"):
            Scrubber(frames, ["a", "b"], strip_scale=bad)


def test_scrubber_script_enables_the_controls_and_removes_the_note_and_strip():
    page = Scrubber(grey_frames((0, 255)), ["a", "b"], strip_scale=0.5)._repr_html_()
    script = re.findall(r"<script>(.*?)</script>", page, flags=re.S)[-1]
    removed = re.search(r"var still = root\.querySelector\('\.([\w-]+)'\)", script).group(1)
    assert re.search(r"still\.parentNode\.removeChild\(still\)", script)
    assert "slider.disabled = false" in script and "play.disabled = false" in script
    tags = parse(page)
    wrappers = [attrs for tag, attrs, _ in tags.tags if removed in attrs.get("class", "").split()]
    assert len(wrappers) == 1  # one element the script removes, holding the note and the strip
    inside = {c for _, _, classes in tags.tags if removed in classes for c in classes}
    assert {"ddpm-scrubber-note", "ddpm-scrubber-strip"} <= inside
    # Nothing the script needs is inside what it removes: the picture, slider, button, label, data.
    needed = [classes for tag, attrs, classes in tags.tags if tag in ("input", "button") or "ddpm-scrubber-label" in classes
              or "ddpm-scrubber-data" in classes]
    first_img = next(classes for tag, _, classes in tags.tags if tag == "img")
    assert all(removed not in c for c in needed + [first_img])


def test_thumbnails_keep_pixel_noise_and_put_figures_on_white():
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)  # pixel grid: 0/255 noise
    small = decode(_thumbnail_png(png_bytes(checker), 0.5))
    assert small.shape == (4, 4) and set(np.unique(small)) <= {0, 255}  # not averaged to grey
    buffer = io.BytesIO()
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)  # a figure with a transparent background
    rgba[:, :5] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    thumb = np.asarray(Image.open(io.BytesIO(_thumbnail_png(buffer.getvalue(), 0.5))).convert("RGB"))
    assert thumb.shape == (5, 5, 3)
    assert (thumb[:, -1] > 240).all()  # transparent became white (64 colours: near), not black
    assert thumb[2, 0, 0] > 200 and thumb[2, 0, 1] < 60  # the red half stays red


@pytest.mark.skipif(not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).is_file(), reason="needs chromium")
def test_scrubber_in_a_browser_with_and_without_its_script():
    """In Chromium: with the script the scrubber is as before (no note, no strip, controls
    enabled, the slider moves); with the scripts removed, as Jupyter's sanitizer does, the note
    and the strip show, the controls are disabled and every strip image decodes."""
    from playwright.sync_api import sync_playwright

    sc = Scrubber(grey_frames((0, 100, 200)), ["a", "b", "c"], title="t", width=60, strip_scale=0.5)
    state_js = """() => {
      const root = document.querySelector('.ddpm-scrubber');
      const note = root.querySelector('.ddpm-scrubber-note');
      return {note: !!note && note.getClientRects().length > 0,
              strip: [...root.querySelectorAll('.ddpm-scrubber-strip img')].filter((i) => i.naturalWidth > 0).length,
              disabled: [root.querySelector('input').disabled, root.querySelector('button').disabled],
              frame: root.getAttribute('data-frame')};
    }"""
    move_js = """() => {
      const s = document.querySelector('.ddpm-scrubber input'); s.value = 2;
      s.dispatchEvent(new Event('input', {bubbles: true}));
      return document.querySelector('.ddpm-scrubber').getAttribute('data-frame');
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.set_content("<html><body>" + sc._repr_html_() + "</body></html>")
            assert page.evaluate(state_js) == {"note": False, "strip": 0, "disabled": [False, False], "frame": "0"}
            assert page.evaluate(move_js) == "2"
            page.set_content("<html><body>" + without_scripts(sc._repr_html_()) + "</body></html>")
            page.locator(".ddpm-scrubber-strip summary").click()
            page.wait_for_function("() => [...document.images].every((i) => i.complete)")
            assert page.evaluate(state_js) == {"note": True, "strip": 3, "disabled": [True, True], "frame": "0"}
            assert page.evaluate(move_js) == "0"
        finally:
            browser.close()
