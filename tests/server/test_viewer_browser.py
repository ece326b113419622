"""The web viewer end to end in headless Chromium (Debian's `chromium`, driven by Playwright), against the
real server on loopback: open /viewer under a path prefix, upload a NIfTI through the page's file input,
check the three views render, scroll a slice, change window/level, pick a model, click the six extreme
points (DEXTR3D) or a foreground + background click (3D deepgrow), run, see the red mask overlay on the
canvases and in a screenshot, and download the mask as NIfTI.

The served models are tiny TorchScript nets that segment the bright voxels of their input crop, so the
mask is predictable (the bright ellipsoid of the test volume, inside the box the engine crops)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)", allow_module_level=True)
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright; no browser download is needed)",
                allow_module_level=True)

from aiaa_test_models import write_volume  # noqa: E402

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHAPE = (40, 36, 24)  # not a cube: axis mix-ups show
PREFIX = "/aiaa"


class Bright(torch.nn.Module):
    """2 logits: foreground where the (windowed to [0, 1]) image channel is above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = 20.0 * (x[:, :1] - 0.5)
        return torch.cat([-fg, fg], 1)


def _live_server_class():
    spec = importlib.util.spec_from_file_location("_server_conftest", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.LiveServer


def _pool(root: Path) -> str:
    torch.jit.save(torch.jit.script(Bright().eval()), str(root / "bright.ts"))
    window = [{"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -50, "a_max": 150,
                                                       "b_min": 0.0, "b_max": 1.0, "clip": True}}]
    common = {"model_format": "torchscript", "model_path": "bright.ts", "precision": "fp32", "runtime": "torch",
              "pre_transforms": window}
    configs = {
        "annotation_blob": ("Dextr3dCroppedEngine", {"type": "annotation", "labels": ["blob"], "roi": [32, 32, 32],
                                                     "padding": 3.0, **common}),
        "deepgrow_blob_3d": ("DeepgrowEngine", {"type": "deepgrow", "labels": [], "dimension": 3,
                                                "spatial_size": [16, 16, 16], **common}),
    }
    pool = []
    for name, (cls, cfg) in configs.items():
        (root / f"{name}.json").write_text(json.dumps(cfg))
        pool.append({"name": name, "class": cls, "config_file": f"{name}.json", "labels": cfg["labels"]})
    (root / "engine_pool.json").write_text(json.dumps(pool))
    return str(root / "engine_pool.json")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    root = tmp_path_factory.mktemp("viewer")
    volume = str(root / "volume.nii.gz")
    write_volume(volume, shape=SHAPE)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    blob = sum((g / 0.5) ** 2 for g in grid) < 1
    settings = ServerSettings(engine_pool=_pool(root), workspace=str(root / "ws"), path_prefix=PREFIX)
    server = _live_server_class()(create_app(settings)).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield {"server": server, "browser": browser, "volume": volume, "blob": blob, "root": root}
        finally:
            browser.close()
            server.stop()


# --- page helpers ------------------------------------------------------------------------------------
def _pixels(page, axis: int) -> np.ndarray:
    """The RGBA pixels of a view's canvas, (h, w, 4)."""
    data = page.evaluate("""(axis) => {
        const c = document.querySelector(`canvas[data-axis="${axis}"]`);
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height);
        return {w: c.width, h: c.height, px: Array.from(d.data)};
    }""", axis)
    return np.array(data["px"], np.int32).reshape(data["h"], data["w"], 4)


def _overlay(rgb: np.ndarray) -> np.ndarray:
    """Pixels in the viewer's mask colour (red tint: r >= g + 127 and r >= b + 127)."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    return (r - g >= 120) & (r - b >= 120)


def _index(page, axis: int) -> int:
    return int(page.text_content(f"#idx-{axis}"))


def _scroll_to(page, axis: int, target: int) -> None:
    canvas = page.locator(f'canvas[data-axis="{axis}"]')
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(abs(target - _index(page, axis))):
        page.mouse.wheel(0, 100 if target > _index(page, axis) else -100)
    page.wait_for_function(f"document.getElementById('idx-{axis}').textContent === '{target}'", timeout=5000)


def _click_voxel(page, p: list[int], shift: bool = False) -> None:
    """Click voxel p = [x, y, z] on the axial view (scrolled to z first). The view shows x to the right
    and y upwards, one canvas pixel per voxel, stretched to the canvas' CSS box."""
    _scroll_to(page, 2, p[2])
    canvas = page.locator('canvas[data-axis="2"]')
    box = canvas.bounding_box()
    w, h = SHAPE[0], SHAPE[1]
    pos = {"x": (p[0] + 0.5) * box["width"] / w, "y": (h - 1 - p[1] + 0.5) * box["height"] / h}
    canvas.click(position=pos, modifiers=["Shift"] if shift else None)


def _open(env):
    page = env["browser"].new_page(viewport={"width": 1200, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(env["server"].url + PREFIX + "/viewer")
    page.wait_for_function("document.querySelectorAll('#model option').length === 2", timeout=10000)
    page.set_input_files("#file", env["volume"])
    page.wait_for_function("document.getElementById('status').textContent.includes('ready')", timeout=15000)
    assert page.is_enabled("#run")
    return page, errors


def _extreme_points(mask: np.ndarray) -> list[list[int]]:
    idx = np.argwhere(mask)
    return [idx[f(idx[:, d])].tolist() for d in range(3) for f in (np.argmin, np.argmax)]


def _run(page) -> str:
    page.click("#run")
    page.wait_for_function("/^(done|error)/.test(document.getElementById('status').textContent)", timeout=20000)
    return page.text_content("#status")


def _download(page, tmp_path) -> nib.Nifti1Image:
    assert page.is_visible("#download")
    with page.expect_download() as info:
        page.click("#download")
    dl = info.value
    assert dl.suggested_filename == "mask.nii.gz"
    path = tmp_path / "mask.nii.gz"
    dl.save_as(str(path))
    return nib.load(str(path))


# --- tests ---------------------------------------------------------------------------------------------
def test_views_scroll_window_level(env):
    page, errors = _open(env)
    try:
        # three orthogonal views, one canvas pixel per voxel, not blank; captions at the middle slices
        for axis, (w, h) in {2: (40, 36), 1: (40, 24), 0: (36, 24)}.items():
            px = _pixels(page, axis)
            assert px.shape[:2] == (h, w)
            assert px[..., :3].std() > 10 and (px[..., 3] == 255).all()
            assert _index(page, axis) == SHAPE[axis] // 2
        # the window starts at the volume's range: the bright ellipsoid shows brighter than the background
        mid = _pixels(page, 2)[..., 0]
        assert mid[18 - 4:18 + 4, 20 - 4:20 + 4].mean() > mid[:4, :4].mean() + 60
        # mouse wheel over the axial view: next slice, different pixels
        before = _pixels(page, 2)
        _scroll_to(page, 2, SHAPE[2] // 2 + 3)
        assert not np.array_equal(before, _pixels(page, 2))
        _scroll_to(page, 2, SHAPE[2] // 2 - 2)
        # window / level sliders redraw
        before = _pixels(page, 0)
        page.fill("#win", "20")
        after_win = _pixels(page, 0)
        assert not np.array_equal(before, after_win)
        assert (after_win[..., 0] == 0).mean() + (after_win[..., 0] == 255).mean() > 0.8  # narrow window: binary
        page.fill("#lev", "1000")
        assert (_pixels(page, 0)[..., :3] == 0).all()  # level above every voxel: black
        assert errors == []
    finally:
        page.close()


def test_dextr3d_extreme_points_overlay_screenshot_download(env, tmp_path):
    page, errors = _open(env)
    try:
        page.select_option("#model", "annotation_blob")
        assert not _overlay(_pixels(page, 2)[..., :3]).any()
        points = _extreme_points(env["blob"])
        for p in points:
            _click_voxel(page, p)
        assert page.text_content("#status").startswith("6 point(s)")
        status = _run(page)
        assert status.startswith("done"), status
        # the overlay on all three views (the views follow the last click, the top of the ellipsoid: the
        # coronal and sagittal views cut it through the middle; the axial one is scrolled there)
        _scroll_to(page, 2, SHAPE[2] // 2)
        for axis in (0, 1, 2):
            assert _overlay(_pixels(page, axis)[..., :3]).sum() > 20, f"no overlay on view {axis}"
        shot = tmp_path / "viewer.png"
        page.screenshot(path=str(shot), full_page=True)
        from PIL import Image

        png = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"))
        assert png.shape[0] > 300 and png.shape[1] > 900
        assert _overlay(png).sum() > 1000, "the mask overlay colour is in the screenshot"
        mask = _download(page, tmp_path)
        assert mask.shape == SHAPE
        data = np.asarray(mask.dataobj)
        assert set(np.unique(data).tolist()) <= {0, 1}
        blob = env["blob"]
        dice = 2 * np.logical_and(data > 0, blob).sum() / (data.sum() + blob.sum())
        assert dice > 0.7, dice
        assert f"done: {int(data.sum())} voxels" in status
        assert errors == []
    finally:
        page.close()


def test_deepgrow_foreground_background_clicks(env, tmp_path):
    page, errors = _open(env)
    try:
        page.select_option("#model", "deepgrow_blob_3d")
        _click_voxel(page, [8, 18, 12], shift=True)  # background, outside the ellipsoid
        _click_voxel(page, [20, 18, 12])  # foreground, its centre
        assert page.text_content("#status").startswith("1 point(s), 1 background")
        status = _run(page)
        assert status.startswith("done"), status
        assert _overlay(_pixels(page, 2)[..., :3]).sum() > 20
        data = np.asarray(_download(page, tmp_path).dataobj)
        assert data.shape == SHAPE and data.any()
        # a 16^3 box around the newest foreground click
        nz = np.argwhere(data)
        assert (nz.min(0) >= [12, 10, 4]).all() and (nz.max(0) < [28, 26, 20]).all()
        assert errors == []
    finally:
        page.close()
