"""seglab app: the server's API and the page in a real browser."""

import io as pyio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
from conftest import broken_images, open_page, shapes_image
from PIL import Image

pytest.importorskip("starlette", reason="pip install 'seglab[app]'")
uvicorn = pytest.importorskip("uvicorn", reason="pip install 'seglab[app]'")

from seglab.app import App, build_app  # noqa: E402
from seglab.segment import segment  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port of 127.0.0.1, with small upload limits."""
    state = App(tmp_path_factory.mktemp("runs"), max_bytes=300_000, max_pixels=200_000)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(build_app(state), "127.0.0.1", port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", state
    srv.should_exit = True
    thread.join(timeout=10)
    state.close()
    assert not state.tmp.exists()  # uploads and results are gone with the server


def _post(url, session, data=None, files=None):
    headers = {"X-Seglab-Session": session}
    body = b""
    if files is not None:
        boundary = uuid.uuid4().hex
        name, content = files
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _png(array) -> bytes:
    buf = pyio.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _labels(url) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as r:
        return np.array(Image.open(pyio.BytesIO(r.read()))).astype(np.int64)


def test_api_runs_the_library_and_keeps_sessions_apart(server):
    base, _ = server
    image = shapes_image()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert _post(f"{base}/api/upload", a, files=("shapes.png", _png(image)))[0] == 200
    assert _post(f"{base}/api/sample/coffee", b)[0] == 200
    status, body = _post(f"{base}/api/run", a, data={})  # nothing chosen: both at defaults
    assert status == 200 and [r["title"] for r in body["results"]] == ["k-means", "mean-shift"]
    for r, method in zip(body["results"], ("kmeans", "meanshift"), strict=True):
        expected = segment(image, method).labels
        assert np.array_equal(_labels(base + r["labels"]), expected)
        assert r["n_segments"] == len(np.unique(expected))
    status, other = _post(f"{base}/api/run", b, data={"methods": [{"method": "kmeans"}]})
    assert status == 200 and other["results"][0]["overlay"].split("/")[2] == b
    # a file of one session is not served under another's id, nor outside its folder
    for path in (f"/files/{b}/../{a}/run2/kmeans/labels.png", f"/files/{b}/%2e%2e/{a}/x.png"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + path, timeout=10)
        assert err.value.code == 404


def test_api_refuses_bad_uploads_and_keeps_serving(server):
    base, _ = server
    s = str(uuid.uuid4())
    status, body = _post(f"{base}/api/upload", s, files=("notes.jpg", b"not an image at all"))
    assert status == 400 and "not an image" in body["error"]
    big = np.zeros((500, 500, 3), np.uint8)  # 250,000 pixels: over the 200,000 limit
    status, body = _post(f"{base}/api/upload", s, files=("big.png", _png(big)))
    assert status == 400 and "limit" in body["error"]
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    status, body = _post(f"{base}/api/upload", s, files=("noise.png", _png(noise)))
    assert status == 400 and "MB" in body["error"]  # 360 KB of noise: over 0.3 MB
    status, body = _post(f"{base}/api/run", s, data={})
    assert status == 400 and "upload an image" in body["error"]
    small = shapes_image()
    assert _post(f"{base}/api/upload", s, files=("ok.png", _png(small)))[0] == 200
    truth = np.zeros(small.shape[:2], np.uint8)
    truth[8:24, 8:28] = 1
    assert _post(f"{base}/api/upload?what=truth", s, files=("t.png", _png(truth)))[0] == 200
    status, body = _post(f"{base}/api/run", s, data={"methods": [{"method": "kmeans",
                                                                   "params": {"n_clusters": "3"}}]})  # fmt: skip
    assert status == 200 and 0 <= body["results"][0]["metrics"]["adjusted_rand"] <= 1


def test_page_in_a_real_browser(server, browser, tmp_path):
    base, _ = server
    photo = tmp_path / "shapes.png"
    image = shapes_image()
    Image.fromarray(image).save(photo)
    page = open_page(browser, base + "/")
    page.set_input_files("#upload input", str(photo))
    page.wait_for_selector("#preview img")
    page.click("#run button")
    page.locator("#results .card img").nth(1).wait_for(timeout=60_000)
    page.wait_for_selector("#run button:not([disabled])")
    page.wait_for_load_state("networkidle")
    names = page.locator("#results .card .name").all_inner_texts()
    assert names == ["k-means", "mean-shift"]
    assert page.locator("#results img").count() == 2 and broken_images(page) == []
    hrefs = page.locator("#results a[download]").evaluate_all("els => els.map(e => e.href)")
    labels = [h for h in hrefs if "/labels." in h]
    assert np.array_equal(_labels(labels[0]), segment(image, "kmeans").labels)
    assert np.array_equal(_labels(labels[1]), segment(image, "meanshift").labels)
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert page.console_errors == [] and page.outside == []
    # moving K re-runs k-means alone
    page.locator("#km-k").fill("3")
    for _ in range(200):
        text = page.locator("#results .card .nums").first.inner_text()
        if "3 segments" in text:
            break
        time.sleep(0.05)
    assert "3 segments" in text
    # a text file named .jpg: a message in the page, and the server goes on
    bad = tmp_path / "notes.jpg"
    bad.write_text("these are notes, not a picture")
    page.set_input_files("#upload input", str(bad))
    page.wait_for_selector("#error.shown")
    assert "not an image" in page.inner_text("#error")
    page.set_input_files("#upload input", str(photo))
    page.wait_for_selector("#error:not(.shown)", state="attached")
    page.wait_for_selector("#run button:not([disabled])")
    assert page.outside == []
    page.close()
