"""Open every page of the built documentation in headless Chromium (Debian's, driven by
Playwright; no browser download): each page reachable from index.html must load with all its
pictures, no console error, and no request leaving the machine.

    python docs/check_site.py docs/_build/html [--screenshot shot.png]

Exit status 0 when every page is clean; 1 with the problems listed; 0 with a notice when Chromium
or Playwright is missing (the build itself is still checked by sphinx-build -W).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlparse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None, help="of the gallery's index")
    args = ap.parse_args()
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        print("check_site: Chromium or Playwright missing; pages not opened in a browser")
        return 0
    root = args.site.resolve()
    start = (root / "index.html").as_uri()
    seen, queue, problems = set(), [start], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        state = {"errors": [], "outside": []}
        page.on("console", lambda m: state["errors"].append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: state["errors"].append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(("file://", "data:", "blob:"))
                else state["outside"].append(r.url))  # fmt: skip
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            state["errors"].clear()
            state["outside"].clear()
            page.goto(url)
            page.wait_for_load_state("load")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                ".map(i => i.src)"
            )
            name = Path(urlparse(url).path).relative_to(root)
            for what, items in (("broken picture", broken), ("console error", state["errors"]),
                                ("outside request", state["outside"])):  # fmt: skip
                problems += [f"{name}: {what}: {item}" for item in items]
            for href in page.evaluate("Array.from(document.links).map(a => a.href)"):
                href = urldefrag(href)[0]
                if href.startswith("file://") and href.endswith(".html"):
                    target = Path(urlparse(href).path)
                    if target.is_relative_to(root) and not target.exists():
                        problems.append(f"{name}: broken link: {target.relative_to(root)}")
                    elif target.is_relative_to(root) and href not in seen:
                        queue.append(href)
        if args.screenshot:
            page.goto((root / "auto_examples" / "index.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(args.screenshot), full_page=False)
        browser.close()
    print(f"check_site: {len(seen)} pages opened, {len(problems)} problems")
    for line in problems[:50]:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
