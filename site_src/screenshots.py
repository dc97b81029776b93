"""Screenshots of the built site for the README: the home page, one lesson and the explorer,
taken by headless Chromium (Debian's `chromium`) from a local server.

    python site_src/screenshots.py [--site build/site] [--lesson 06] [--out docs]
"""

import argparse
import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lessons"))

import course  # lessons/course.py: the lessons in reading order


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", default=str(REPO / "build" / "site"))
    ap.add_argument("--lesson", default="06", help="the lesson to show (default: 06)")
    ap.add_argument("--out", default=str(REPO / "docs"))
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    lesson = course.select([args.lesson])[0].stem
    shots = [("index.html", None, "site-home.png"),
             (f"lessons/{lesson}.html", "article details", "site-lesson.png"),  # a folded solution
             ("explorer.html", "#mnist-2d", "site-explorer.png")]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=args.site))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for path, anchor, name in shots:
                page.goto(f"http://127.0.0.1:{httpd.server_port}/{path}")
                page.wait_for_function("document.body.dataset.mathjax === 'done'")
                page.wait_for_load_state("networkidle")
                if anchor:                          # one scroll down (up shows a button)
                    page.evaluate("""(sel) => {
                        const top = document.querySelector(sel).getBoundingClientRect().top;
                        window.scrollTo(0, top + window.scrollY - 140);
                    }""", anchor)
                page.wait_for_timeout(500)
                page.screenshot(path=str(Path(args.out) / name))
                print(f"wrote {Path(args.out) / name}")
            browser.close()
    finally:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
