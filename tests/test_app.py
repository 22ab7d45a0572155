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
from _helpers import broken_images, open_page, shapes_image
from PIL import Image

pytest.importorskip("starlette", reason="pip install 'seglab[app]'")
uvicorn = pytest.importorskip("uvicorn", reason="pip install 'seglab[app]'")

from seglab.app import App, build_app  # noqa: E402
from seglab.segment import segment  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EVIL_NAME = 'x"><img src=nope onerror="document.title=1">'


def _serve(state):
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(build_app(state), "127.0.0.1", port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv, thread


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port of 127.0.0.1, with small upload limits, and a checkpoint whose
    folder name is an HTML injection attempt."""
    from seglab.engine.checkpoint import save_checkpoint

    runs = tmp_path_factory.mktemp("runs")
    save_checkpoint(
        runs / EVIL_NAME / "best.pt", {"model": {}, "config": {"model": {"name": "unet"}}}
    )
    state = App(runs, max_bytes=300_000, max_pixels=200_000)
    base, srv, thread = _serve(state)
    yield base, state
    srv.should_exit = True
    thread.join(timeout=10)
    assert not state.tmp.exists()  # the lifespan's end removed uploads and results


def _session(base) -> str:
    return _post(f"{base}/api/session", "")[1]["session"]


def _post(url, session, data=None, files=None, headers=None, raw=None):
    headers = {"X-Seglab-Session": session, **(headers or {})}
    body = b"" if raw is None else raw
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
    if data is not None or raw is not None:
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
    a, b = _session(base), _session(base)
    assert len(a) >= 32 and a != b
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
    s = _session(base)
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
    expected = segment(small, "kmeans", n_clusters=3).labels
    from seglab.metrics import adjusted_rand_index

    ari = body["results"][0]["metrics"]["adjusted_rand_index"]
    assert ari == pytest.approx(adjusted_rand_index(truth, expected, ignore_index=255))
    # an all-ignore truth gives no score, never a perfect one
    assert (
        _post(f"{base}/api/upload?what=truth", s, files=("t.png", _png(truth * 0 + 255)))[0] == 200
    )
    status, body = _post(f"{base}/api/run", s, data={"methods": [{"method": "kmeans"}]})
    assert status == 200 and body["results"][0]["metrics"]["adjusted_rand_index"] is None


@pytest.mark.slow
def test_page_in_a_real_browser(server, browser, tmp_path):
    base, _ = server
    photo = tmp_path / "shapes.png"
    image = shapes_image()
    Image.fromarray(image).save(photo)
    page = open_page(browser, base + "/")
    page.wait_for_selector("#checkpoints input")
    assert EVIL_NAME in page.inner_text("#checkpoints")  # shown as text, never parsed as HTML
    assert page.title() == "seglab app" and page.locator("img[src=nope]").count() == 0
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


def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_every_response_is_guarded_and_every_refusal_is_json(server):
    base, state = server
    s = _session(base)
    for path in ("/", "/page.js", "/page.css", "/api/config", "/files/nobody/x.png", "/nope"):
        status, headers, _ = _get(base + path)
        h = {k.lower(): v for k, v in headers.items()}
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert "script-src 'self';" in h["content-security-policy"]  # no inline script
        assert h["x-content-type-options"] == "nosniff"
    # DNS rebinding: a page of another site whose name resolves to 127.0.0.1
    status, _, body = _get(base + "/api/config", {"Host": "evil.example"})
    assert status == 421 and "evil.example" in json.loads(body)["error"]
    # sessions are the server's: an id the client makes up is refused
    status, body = _post(f"{base}/api/sample/coffee", "made-up-by-the-client-123")
    assert status == 410 and "reload the page" in body["error"]
    assert _post(f"{base}/api/sample/coffee", s)[0] == 200
    bad = [
        ({"methods": "kmeans"}, "list"),
        ({"methods": [{"method": "kmeans"}] * 1000}, "at most"),
        ({"methods": [{"method": "kmeans", "params": {"max_memory": 10**15}}]}, "max_memory"),
        ({"methods": [{"method": "kmeans", "params": {"n_init": 1000}}]}, "n_init"),
        ({"methods": [{"method": "kmeans", "params": {"n_clusters": "x"}}]}, "n_clusters"),
        ({"methods": [{"method": "kmeans", "params": [1, 2]}]}, "object"),
        ({"methods": [{"method": "rm -rf"}]}, "unknown method"),
    ]
    for data, words in bad:
        status, body = _post(f"{base}/api/run", s, data=data)
        assert status == 400 and words in body["error"], (data, body)
    status, body = _post(f"{base}/api/run", s, raw=b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, _, body = _get(f"{base}/files/{s}/a%00b.png")
    assert status == 404 and json.loads(body)["error"] == "not found"
    # refused from Content-Length, before the body is read (so the body need not be sent)
    import http.client

    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/api/upload")
    for k, v in {"Content-Length": str(state.max_bytes + 2_000_000), "X-Seglab-Session": s,
                 "Content-Type": "multipart/form-data; boundary=x"}.items():  # fmt: skip
        conn.putheader(k, v)
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and "limit is 0.3 MB" in json.loads(response.read())["error"]
    conn.close()


def test_sessions_expire_and_memory_is_bounded(tmp_path):
    image = shapes_image()  # 48 x 64 x 3 = 9216 bytes
    state = App(tmp_path / "runs", max_memory=20_000, idle_timeout=3600)
    base, srv, thread = _serve(state)
    try:
        a, b, c = _session(base), _session(base), _session(base)
        for s in (a, b):
            assert _post(f"{base}/api/upload", s, files=("x.png", _png(image)))[0] == 200
        assert sum(x.nbytes for x in state.sessions.values()) <= 20_000
        assert _post(f"{base}/api/upload", c, files=("x.png", _png(image)))[0] == 200
        status, body = _post(f"{base}/api/run", a, data={})  # the least recently used: dropped
        assert status == 410 and "make room" in body["error"]
        assert sum(x.nbytes for x in state.sessions.values()) <= 20_000
        assert not (state.tmp / a).exists()  # its files went with it
        state.idle_timeout = 0.0
        time.sleep(0.01)
        status, body = _post(f"{base}/api/run", b, data={})
        assert status == 410 and "expired" in body["error"]
        # a busy run pool never stalls the page or uploads
        import threading as th

        release = th.Event()
        state.idle_timeout = 3600
        for _ in range(4):
            state.pool.submit(release.wait, 30)
        t0 = time.monotonic()
        s = _session(base)
        assert _post(f"{base}/api/upload", s, files=("x.png", _png(image)))[0] == 200
        assert _get(base + "/api/config")[0] == 200
        assert time.monotonic() - t0 < 10
        release.set()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    assert not state.tmp.exists()


@pytest.mark.slow
def test_sigterm_removes_the_temporary_folder_and_wide_hosts_are_warned(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seglab", "app", "--port", str(port), "--host", "0.0.0.0",
         "--runs", str(tmp_path / "none")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(600):
            if list(tmp_path.glob("seglab-app-*")):
                try:
                    if _get(f"http://127.0.0.1:{port}/api/config")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        s = _session(f"http://127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        assert _post(f"{base}/api/sample/coffee", s)[0] == 200
        assert list(tmp_path.glob("seglab-app-*/*"))  # the upload is on disk
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "anyone who can reach this machine" in err
    assert list(tmp_path.glob("seglab-app-*")) == []


def test_app_port_out_of_range_is_one_line(capsys):
    from seglab.cli import main

    assert main(["app", "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert "65536" in err and "Traceback" not in err


def _until(page, expression: str, seconds: float = 30) -> None:
    """Poll a page expression (the page's CSP forbids wait_for_function's eval)."""
    for _ in range(int(seconds * 20)):
        if page.evaluate(expression):
            return
        time.sleep(0.05)
    raise AssertionError(f"never true: {expression}; the page says {page.inner_text('#error')!r}")


@pytest.mark.slow
def test_labelling_in_a_real_browser(server, browser, tmp_path):
    """Strokes drawn with the mouse label pixels, Train shows a prediction, the downloads are
    the library's own results (the app and scripts share one implementation)."""
    from seglab.interactive import StrokeSegmenter, fit_strokes

    base, _ = server
    image = np.array(Image.fromarray(shapes_image()).resize((256, 192), Image.NEAREST))
    photo = tmp_path / "shapes.png"
    Image.fromarray(image).save(photo)
    page = open_page(browser, base + "/")
    page.set_input_files("#upload input", str(photo))
    page.wait_for_selector("#canvas")
    _until(page, "document.getElementById('canvas').width === 256")
    box = page.locator("#canvas").bounding_box()

    def stroke(points):
        sx, sy = box["width"] / 256, box["height"] / 192
        page.mouse.move(box["x"] + points[0][0] * sx, box["y"] + points[0][1] * sy)
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=5)
        page.mouse.up()

    page.click("#class-1")  # background: the green field and the blue disc
    stroke([(10, 10), (240, 12)])
    stroke([(20, 170), (120, 170)])
    stroke([(165, 120), (200, 120)])
    page.click("#class-2")  # the red square
    box = page.locator("#canvas").bounding_box()
    stroke([(50, 50), (95, 60)])
    strokes = np.array(page.evaluate("Array.from(L.labels)"), np.int64).reshape(192, 256)
    assert (strokes == 1).sum() > 200 and (strokes == 2).sum() > 50  # the mouse painted pixels
    assert np.all(strokes[40:90, 40:105][strokes[40:90, 40:105] > 0] == 2)
    page.click("#train")
    page.wait_for_selector("#results [data-method=strokes-prediction] img", timeout=120_000)
    page.wait_for_load_state("networkidle")
    assert broken_images(page) == [] and page.console_errors == [] and page.outside == []
    page.screenshot(path=str(tmp_path / "labelling.png"), full_page=True)
    links = dict(page.locator("#results [data-method=strokes-prediction] a[download]").evaluate_all(
        "els => els.map(e => [e.getAttribute('download'), e.href])"))  # fmt: skip
    expected = fit_strokes(image, strokes, class_names=["background", "object"]).predict(image)
    assert np.array_equal(_labels(links["labels.png"]), expected)
    with urllib.request.urlopen(links["segmenter.npz"], timeout=30) as r:
        (tmp_path / "seg.npz").write_bytes(r.read())
    assert np.array_equal(StrokeSegmenter.load(tmp_path / "seg.npz").predict(image), expected)
    with urllib.request.urlopen(links["coco.json"], timeout=30) as r:
        coco = json.loads(r.read())
    assert {c["name"] for c in coco["categories"]} == {"background", "object"}
    assert sum(a["area"] for a in coco["annotations"]) == 256 * 192
    square = np.zeros((192, 256), bool)
    square[32:96, 32:112] = True  # the red square, 4x
    iou = (square & (expected == 2)).sum() / (square | (expected == 2)).sum()
    assert iou > 0.9
    # undo removes the last stroke; the fill tool labels a whole segment in one click
    page.click("#undo")
    assert np.array(page.evaluate("Array.from(L.labels)")).reshape(192, 256)[55, 70] == 0
    before = int(page.evaluate("L.labels.filter(v => v === 2).length"))
    page.check("input[value=fill-kmeans]")
    page.evaluate("window.scrollTo(0, 0)")  # clicking Train scrolled the page down
    box = page.locator("#canvas").bounding_box()
    sx, sy = box["width"] / 256, box["height"] / 192
    page.mouse.click(box["x"] + 70 * sx, box["y"] + 60 * sy)
    _until(
        page,
        f"L.labels[60 * 256 + 70] === 2 && L.labels.filter(v => v === 2).length > {before + 100}",
        120,
    )
    filled = np.array(page.evaluate("Array.from(L.labels)")).reshape(192, 256) == 2
    assert not filled[~square].any()  # one segment of the square, nothing outside it
    page.close()


def test_the_kernels_are_prepared_when_the_app_starts(server):
    from seglab import segment

    _, state = server
    assert state.warming is not None
    state.warming.result(timeout=300)
    for method in ("kmeans", "meanshift"):  # the app's own warm-up: uint8 RGB, defaults
        assert (method, "|u1", (3,), ()) in segment._WARM
