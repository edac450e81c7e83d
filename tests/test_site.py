"""The course website: built strictly, then every page opened in headless Chromium.

Skipped when the ``docs`` extra is not installed (``pip install -e ".[docs]"``); the browser
part is skipped when Playwright or a Chromium cannot start (Debian: ``apt-get install
chromium``; another binary via ``NUMPYVAE_CHROMIUM``). Screenshots of one note page, one
gallery page, the latent explorer and the two demos (desktop and phone-sized) go to
``.cache/numpyvae-site/screenshots/`` (or ``NUMPYVAE_SITE_SCREENSHOTS``).
"""
from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import numpy as np
import pytest

import numpyvae as nv
from numpyvae.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
for _mod in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "pymdownx"):
    try:
        _found = importlib.util.find_spec(_mod) is not None
    except ModuleNotFoundError:
        _found = False
    if not _found:
        pytest.skip(f"the docs extra is not installed ({_mod} missing): "
                    "pip install -e \".[docs]\"", allow_module_level=True)

SHOTS = Path(os.environ.get("NUMPYVAE_SITE_SCREENSHOTS",
                            ROOT / ".cache" / "numpyvae-site" / "screenshots"))
# every host name but this machine's fails to resolve: a page cannot reach the network, and
# the tests below see (and fail on) any request it makes for another host
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
REF = re.compile(r"Derivation:\s*derivations/([\w.-]+\.md),\s*eq\.\s*\((\d+\.\d+)\)")


def _hook():
    spec = importlib.util.spec_from_file_location("numpyvae_site_hook",
                                                  ROOT / "docs" / "hooks" / "numpyvae_site.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stderr[-4000:]}"
    assert "0 failed" in r.stderr, "the build did not check the formulas with KaTeX"
    return out


def _notes():
    return sorted(p.stem for p in (ROOT / "derivations").glob("[0-9][0-9]_*.md"))


def _public_modules():
    out = []
    for path in (ROOT / "numpyvae").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            out.append(".".join(parts))
    return sorted(out)


def _examples():
    return sorted(p.stem for p in (ROOT / "examples").glob("[0-9][0-9]_*.py"))


# ------------------------------------------------------------------ the build (no browser)

def test_every_note_module_and_example_has_a_page(site):
    for note in _notes():
        assert (site / "derivations" / note / "index.html").is_file(), note
    assert (site / "index.html").is_file() and (site / "docs" / "INSTRUCTORS" / "index.html").is_file()
    assert (site / "docs" / "benchmarks" / "index.html").is_file()
    # the worked answers to the notes' exercises are for instructors: no page, no copy of the file
    assert not list(site.rglob("*solutions*")), list(site.rglob("*solutions*"))
    modules = _public_modules()
    for wing in ("data", "training", "theory", "teaching", "cli"):
        assert any(m.startswith(f"numpyvae.{wing}.") for m in modules), wing
    for mod in modules:
        assert (site / "api" / mod / "index.html").is_file(), f"no API page for {mod}"
    for ex in _examples():
        page = (site / "gallery" / ex / "index.html").read_text(encoding="utf-8")
        assert f"python examples/{ex}.py" in page, f"{ex}: the gallery page lacks its command"
        assert "<img" in page, f"{ex}: the gallery page has no figure"


def test_the_site_loads_nothing_from_the_network(site):
    """Offline: no script, stylesheet or font from another host (the KaTeX files are bundled)."""
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*(?:src|href)=["'](?:https?:)?//""", re.I)
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not remote.search(text), f"{page.relative_to(site)} loads a remote resource"
    assert (site / "assets" / "katex" / "katex.min.js").is_file()
    css = (site / "assets" / "katex" / "katex.min.css").read_text(encoding="utf-8")
    for font in set(re.findall(r"fonts/([\w-]+\.woff2)", css)):
        assert (site / "assets" / "katex" / "fonts" / font).is_file(), font


def test_every_docstring_reference_became_a_link(site):
    """Each `Derivation:` line of the package is a link on its module's API page."""
    expected = 0
    for path in (ROOT / "numpyvae").rglob("*.py"):
        if any(p.startswith("_") and p != "__init__.py" for p in path.relative_to(ROOT).parts):
            continue
        src = path.read_text(encoding="utf-8")
        if REF.search(src):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            page = (site / "api" / dotted / "index.html").read_text(encoding="utf-8")
            n_links = page.count('class="numpyvae-derivation"')
            assert n_links >= 1, f"{dotted}: no Derivation line became a link"
            expected += 1
    assert expected >= 5


# ------------------------------------------------------------------ the checks fail when they should

@pytest.mark.parametrize("backend", ["node", "quickjs"])
def test_formula_check_rejects_what_katex_cannot_parse(tmp_path, backend, monkeypatch):
    hook = _hook()
    hook.STATE["root"] = tmp_path  # the check's cache goes to tmp_path/.cache
    if backend == "node":
        if shutil.which("node") is None:
            pytest.skip("Node.js is not installed")
    else:
        pytest.importorskip("quickjs")
        monkeypatch.setattr(hook.shutil, "which", lambda name: None)  # as without Node.js

    class Cfg:
        docs_dir = str(ROOT / "docs" / "site")

    errors = hook._katex_errors(Cfg, [(r"\frac12\sum_{j=1}^{Z} e^{v_j} \tag{3.3}", True),
                                      (r"\frac12 \notacommand", True), (r"\left( x", False)])
    assert errors is not None
    assert errors[0] == ""
    assert "notacommand" in errors[1] and errors[2]


def test_github_math_fences_and_dollars_all_become_math():
    """```math blocks (GitHub's syntax), $$ ... $$ and $ ... $ are all handed to KaTeX."""
    import markdown
    from mkdocs.config import load_config

    cfg = load_config(str(ROOT / "mkdocs.yml"))
    md = markdown.Markdown(extensions=cfg.markdown_extensions, extension_configs=cfg.mdx_configs)
    out = md.convert("Inline $a_1 + b$.\n\n```math\n\\mathrm{KL} \\tag{3.3}\n```\n\n"
                     "$$ x \\tag{2.1} $$\n\n```python\nx = '$not math$'\n```\n")
    assert out.count('<span class="arithmatex">') == 1
    assert out.count('<div class="arithmatex">') == 2
    assert "$not math$" in out
    hook = _hook()
    anchored = hook.DISPLAY.sub(hook._anchor_equation, out)
    assert 'id="eq-3.3"' in anchored and 'id="eq-2.1"' in anchored


def test_a_name_that_does_not_exist_fails_the_build(caplog):
    hook = _hook()
    hook.STATE["root"] = ROOT
    md = "See `numpyvae.kl.kl_normal_std` and `numpyvae.kl.no_such_function`.\n```python\n`numpyvae.x`\n```"
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.numpyvae_site"):
        out, named = hook._link_names(md, "derivations/02_kl.md")
    assert named == ["numpyvae.kl.kl_normal_std"]
    assert "[`numpyvae.kl.kl_normal_std`][numpyvae.kl.kl_normal_std]" in out
    assert "`numpyvae.x`" in out.split("```python")[1]  # code blocks are left alone
    assert any("no_such_function" in r.getMessage() for r in caplog.records)


def test_the_search_index_lists_every_page(site):
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    listed = {d["location"].split("#")[0] for d in index["docs"]}
    pages = {p.parent.relative_to(site).as_posix() + "/" for p in site.rglob("index.html")} - {"./"}
    assert pages - listed == set(), sorted(pages - listed)[:5]
    assert index["config"]["lang"] and all(d["text"] is not None for d in index["docs"])


# ------------------------------------------------------------------ in the browser

def _site_handler(site):
    """The site's files, quietly; but the theme's search index comes with no documents. Each
    page's search worker parses the whole index (1.6 MB) and builds it again: the largest single
    cost of opening a page here, and no test below searches
    (``test_the_search_index_lists_every_page`` checks the real index)."""
    config = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["config"]
    empty = json.dumps({"config": config, "docs": []}).encode()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if urlparse(self.path).path != "/search/search_index.json":
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(empty)))
            self.end_headers()
            self.wfile.write(empty)

    return functools.partial(Handler, directory=str(site))


@pytest.fixture(scope="module")
def server(site):
    handler = _site_handler(site)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def _remote_requests(ctx):
    """The URLs of requests ``ctx``'s pages make to another host (a list that fills as they
    load). Watched, not routed: a route handler would switch off the browser's cache and fetch
    every script, style sheet and font again on each page; CHROMIUM_ARGS already keep every
    such request from leaving the machine."""
    remote = []

    def request(r):
        local = urlparse(r.url).hostname in ("127.0.0.1", "localhost")
        if not (local or r.url.startswith(("file:", "data:", "blob:"))):
            remote.append(r.url)

    ctx.on("request", request)
    return remote


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = os.environ.get("NUMPYVAE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        pw = sync_api.sync_playwright().start()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Playwright cannot start: {exc}")
    try:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS) if exe else \
            pw.chromium.launch(args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001
        pw.stop()
        pytest.skip(f"no Chromium could start ({exc.__class__.__name__}); "
                    "apt-get install chromium")
    yield b
    b.close()
    pw.stop()


PAGE_FACTS = """() => {
  for (const img of document.images) { img.loading = "eager"; }
  return {
    math: document.querySelectorAll(".arithmatex").length,
    rendered: document.querySelectorAll(".arithmatex .katex").length,
    errors: Array.from(document.querySelectorAll(".katex-error")).map(e => e.getAttribute("title") || e.textContent),
    ids: Array.from(document.querySelectorAll("[id]")).map(e => e.id),
    links: Array.from(document.querySelectorAll("article a[href]")).map(a => [a.href, a.className]),
    images: Array.from(document.querySelectorAll("article img")).map(i => i.src),
  };
}"""

IMAGES_OK = """() => Array.from(document.querySelectorAll("article img")).map(
  i => [i.src, i.complete && i.naturalWidth > 0])"""


def test_every_page_in_the_browser(site, server, browser):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    remote = _remote_requests(ctx)
    page = ctx.new_page()
    js_errors = []
    page.on("pageerror", lambda e: js_errors.append(str(e)))
    facts = {}
    page.goto(server, wait_until="load")
    # the error-node detector below sees what the bundled KaTeX makes of a broken formula
    probe = page.evaluate("""() => { const el = document.createElement("span");
        katex.render("\\frac12 \\notacommand", el, {throwOnError: false});
        return el.querySelectorAll(".katex-error").length; }""")
    assert probe == 1
    for rel in pages:
        url = urljoin(server, rel[: -len("index.html")])
        resp = page.goto(url, wait_until="load")
        assert resp is not None and resp.ok, url
        f = page.evaluate(PAGE_FACTS)
        assert f["errors"] == [], f"{rel}: KaTeX error nodes: {f['errors'][:3]}"
        assert f["rendered"] == f["math"], f"{rel}: {f['math'] - f['rendered']} formulas not rendered"
        if f["images"]:
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('article img')).every(i => i.complete)",
                timeout=30_000)
            bad = [src for src, ok in page.evaluate(IMAGES_OK) if not ok]
            assert bad == [], f"{rel}: images that did not load: {bad}"
        facts[url] = f
    assert js_errors == [], js_errors[:3]
    assert remote == [], f"requests to other hosts: {remote[:5]}"

    def resolves(href):
        base, frag = urldefrag(href)
        target = facts.get(base)
        return target is not None and (not frag or frag in target["ids"])

    notes = [u for u in facts if "/derivations/" in u and not u.endswith("/derivations/")]
    assert len(notes) == len(_notes())
    n_to_code = 0
    for u in notes:
        to_code = [h for h, _ in facts[u]["links"] if "/api/" in h]
        assert to_code, f"{u} links to no API entry"
        broken = [h for h in to_code if not resolves(h)]
        assert broken == [], f"{u}: note-to-code links that do not resolve: {broken[:5]}"
        n_to_code += len(to_code)
    to_notes = [h for u in facts if "/api/" in u for h, cls in facts[u]["links"]
                if "numpyvae-derivation" in cls]
    assert len(to_notes) >= 50
    broken = [h for h in to_notes if not resolves(h)]
    assert broken == [], f"code-to-note links that do not resolve: {broken[:5]}"
    # and every other link inside the site lands on a page of the site
    internal = {h for f in facts.values() for h, _ in f["links"] if h.startswith(server)}
    missing = [h for h in internal if urldefrag(h)[0] not in facts
               and not (site / urlparse(urldefrag(h)[0]).path.lstrip("/")).is_file()]
    assert missing == [], f"links to nothing: {missing[:5]}"
    assert n_to_code >= 50

    # screenshots, for a person to look at
    SHOTS.mkdir(parents=True, exist_ok=True)
    note = next((u for u in notes if "kl" in u.rsplit("/", 2)[-2]), notes[0])
    page.goto(note, wait_until="load")
    page.evaluate("() => { const d = document.querySelector('article details'); if (d) d.open = true; }")
    page.screenshot(path=str(SHOTS / "note.png"))
    first_tag = next(i for i in facts[note]["ids"] if i.startswith("eq-"))
    page.evaluate(f"document.getElementById({first_tag!r}).scrollIntoView({{block: 'center'}})")
    page.screenshot(path=str(SHOTS / "note-equation.png"))
    gallery = next(u for u in facts if "/gallery/" in u and facts[u]["images"]
                   and not u.endswith("/gallery/"))
    page.goto(gallery, wait_until="load")
    page.screenshot(path=str(SHOTS / "gallery.png"), full_page=True)
    page.goto(urljoin(server, "gallery/"), wait_until="load")
    page.evaluate("() => { for (const i of document.images) i.loading = 'eager'; }")
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    page.screenshot(path=str(SHOTS / "gallery-index.png"))
    ctx.close()
    assert (SHOTS / "note.png").stat().st_size > 10_000


# ------------------------------------------------------------------ the explorer and the demos

def _exported(site, name):
    """The data a page's script receives: the JSON of assets/models/<name>.js."""
    text = (site / "assets" / "models" / f"{name}.js").read_text(encoding="utf-8")
    return json.loads(re.search(r"\] = (\{.*\});\s*$", text, re.S).group(1))


def _b64(s, dtype):
    return np.frombuffer(base64.b64decode(s), dtype=dtype)


def test_the_shipped_models_are_exported_for_the_pages(site):
    """The explorer gets the 2-D model's decoder as stored and the validation digits encoded
    by it; the collapse demo gets the default model's KL per dimension."""
    m = _exported(site, "mnist-2d")
    assert m["checkpoint"] == "numpyvae/shipped/mnist-2d.npz" and (ROOT / m["checkpoint"]).is_file()
    vae = nv.load_model(ROOT / m["checkpoint"])
    names = ["dec.0", "dec.out"]
    assert [L["act"] for L in m["layers"]] == ["relu", "sigmoid"]
    for L, nm in zip(m["layers"], names):
        np.testing.assert_array_equal(_b64(L["W"], "<f4").reshape(L["n_in"], L["n_out"]), vae.params[f"{nm}.W"])
        np.testing.assert_array_equal(_b64(L["b"], "<f4"), vae.params[f"{nm}.b"])
    ds = load_dataset("mnist-embedded", seed=0)
    mu, logvar = vae.encode(ds.x_val)
    np.testing.assert_allclose(_b64(m["points"]["mu"], "<f4").reshape(-1, 2), mu, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(_b64(m["points"]["label"], "u1"), ds.y_val)

    k = _exported(site, "mnist-20d")
    vae = nv.load_model(ROOT / k["checkpoint"])
    mu, logvar = (np.asarray(a, dtype=np.float64) for a in vae.encode(ds.x_val))
    per_dim = nv.kl.kl_normal_std(mu[:, :, None], logvar[:, :, None]).mean(axis=0)  # one dim at a time
    np.testing.assert_allclose(k["kl"], per_dim, rtol=0, atol=1e-4)
    assert abs(sum(k["kl"]) - vae.forward(ds.x_val).kl) < 1e-2  # the bars add up to the model's KL


def test_each_demo_sits_in_one_note_and_its_equation_links_resolve(site):
    for demo in ("numpyvae-demo-reparam", "numpyvae-demo-kl"):
        pages = [p for p in (site / "derivations").rglob("index.html")
                 if f'id="{demo}"' in p.read_text(encoding="utf-8")]
        assert len(pages) == 1, f"{demo} is on {len(pages)} note pages"
        text = pages[0].read_text(encoding="utf-8")
        box = text[text.index(f'id="{demo}"'):]
        box = box[:box.index("<script")]
        anchors = re.findall(r'href="#(eq-[\d.]+)"', box)
        assert anchors, demo
        for a in anchors:
            assert f'id="{a}"' in text, f"{demo} links to #{a}, which its note does not have"


def test_the_home_page_points_to_the_explorer_first(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    article = home[home.index("<article"):]
    first_link = re.search(r'<a [^>]*href="([^"]+)"', article[article.index("</h1>"):]).group(1)
    assert first_link.rstrip("/").endswith("explorer"), first_link
    assert (site / "explorer" / "index.html").is_file()


def _browser_context(browser, viewport):
    """A context that records every request to another host, and collects console errors."""
    ctx = browser.new_context(viewport=viewport)
    remote, errors = _remote_requests(ctx), []
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return ctx, page, remote, errors


CANVAS = "sel => document.querySelector(sel).toDataURL()"
# the top of an element just below the page's fixed header
SCROLL_TO = "sel => window.scrollTo(0, document.querySelector(sel).getBoundingClientRect().top + scrollY - 56)"
INK = """sel => { const c = document.querySelector(sel), d = c.getContext('2d')
    .getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n; }"""


def test_the_explorer_and_the_demos_in_the_browser(site, server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx, page, remote, errors = _browser_context(browser, {"width": 1280, "height": 900})
    page.goto(urljoin(server, "explorer/"), wait_until="load")
    page.wait_for_function("() => window.numpyvaeExplorer !== undefined")
    ck_path = page.evaluate("window.numpyvaeExplorer.checkpoint")
    assert ck_path == "numpyvae/shipped/mnist-2d.npz"

    # the decoder in the page is numpyvae's, to 1e-5, at random z (some far from the data)
    vae = nv.load_model(ROOT / ck_path)
    z = np.random.default_rng(0).normal(0.0, 2.5, size=(25, 2))
    got = np.array(page.evaluate("zs => zs.map(z => window.numpyvaeExplorer.decode(z))", z.tolist()))
    want = vae.decode_mean(z.astype(np.float32)).astype(np.float64)
    assert got.shape == (25, 784)
    assert np.abs(got - want).max() < 1e-5, np.abs(got - want).max()
    assert np.abs(want - want.mean(axis=0)).max() > 0.5  # the z's decode to different images

    # dragging across the plane moves the cursor and redraws the decoded image
    plane = page.locator("#numpyvae-explorer .numpyvae-plane")
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    before = page.evaluate(CANVAS, "#numpyvae-explorer .numpyvae-decoded")
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.5 * box["height"])
    page.mouse.down()
    for f in (0.3, 0.45, 0.6, 0.8):
        page.mouse.move(box["x"] + f * box["width"], box["y"] + 0.3 * box["height"], steps=3)
    page.mouse.up()
    cursor = page.evaluate("window.numpyvaeExplorer.state.cursor")
    after = page.evaluate(CANVAS, "#numpyvae-explorer .numpyvae-decoded")
    assert after != before
    assert cursor[0] > 0 and cursor[1] > 0  # right of and above the middle, where the pointer went
    shown = page.evaluate(INK, "#numpyvae-explorer .numpyvae-decoded")
    assert shown > 100, "the decoded image is blank"

    # clicking a digit shows its q(z|x) and eight decoded samples drawn from it
    i = 123
    samples_before = page.evaluate(CANVAS, "#numpyvae-explorer .numpyvae-samples")
    x, y = page.evaluate(f"window.numpyvaeExplorer.pointOnScreen({i})")
    page.mouse.click(x, y)
    st = page.evaluate("window.numpyvaeExplorer.state")
    assert st["sel"] == i and len(st["samples"]) == 8
    assert page.evaluate(CANVAS, "#numpyvae-explorer .numpyvae-samples") != samples_before
    m = _exported(site, "mnist-2d")
    pts = _b64(m["points"]["mu"], "<f4").reshape(-1, 2).astype(np.float64)
    sig = np.exp(_b64(m["points"]["logvar"], "<f4").reshape(-1, 2).astype(np.float64) / 2)
    eps = (np.array(st["samples"]) - pts[i]) / sig[i]  # z = mu + sigma * eps: eps is N(0, I)
    assert np.abs(eps).max() < 5 and eps.std() > 0.3, eps
    # the slider walks the straight line between the last two digits clicked
    a, b = st["pair"]
    page.evaluate("""() => { const s = document.querySelector('#numpyvae-explorer .numpyvae-slider');
        s.value = 250; s.dispatchEvent(new Event('input')); }""")
    c = np.array(page.evaluate("window.numpyvaeExplorer.state.cursor"))
    np.testing.assert_allclose(c, 0.75 * pts[a] + 0.25 * pts[b], atol=1e-6)
    page.evaluate(SCROLL_TO, "#numpyvae-explorer")
    page.screenshot(path=str(SHOTS / "explorer.png"))

    # note 04: z_k = mu + sigma * eps_k with eps fixed; the arrows are dz_k/dv = eps_k sigma / 2
    page.goto(urljoin(server, "derivations/04_reparameterization/"), wait_until="load")
    page.wait_for_function("() => window.numpyvaeDemos && window.numpyvaeDemos.reparam")
    page.evaluate("window.numpyvaeDemos.reparam.set([1, -1], [0, 0])")
    eps = np.array(page.evaluate("window.numpyvaeDemos.reparam.state.eps"))
    page.evaluate("window.numpyvaeDemos.reparam.set([0.5, 1.5], [1.5, -2])")
    zs = np.array(page.evaluate("window.numpyvaeDemos.reparam.samples()"))
    arrows = np.array(page.evaluate("window.numpyvaeDemos.reparam.dzdv()"))
    sigma = np.exp(np.array([1.5, -2]) / 2)
    np.testing.assert_allclose(zs, np.array([0.5, 1.5]) + sigma * eps, atol=1e-12)
    np.testing.assert_allclose(arrows, eps * sigma / 2, atol=1e-12)
    page.evaluate(SCROLL_TO, "#numpyvae-demo-reparam")
    page.screenshot(path=str(SHOTS / "demo-reparam.png"))

    # note 09: hovering a bar shows that dimension's traversal
    page.goto(urljoin(server, "derivations/09_prior_and_collapse/"), wait_until="load")
    page.wait_for_function("() => window.numpyvaeDemos && window.numpyvaeDemos.kl")
    bars = page.locator("#numpyvae-demo-kl .numpyvae-kl-bars")
    bars.scroll_into_view_if_needed()
    row_before = page.evaluate(CANVAS, "#numpyvae-demo-kl .numpyvae-kl-row")
    order = page.evaluate("window.numpyvaeDemos.kl.order")
    bb = bars.bounding_box()
    page.mouse.move(bb["x"] + bb["width"] * 2.5 / len(order), bb["y"] + bb["height"] / 2)
    assert page.evaluate("window.numpyvaeDemos.kl.state.dim") == order[2]
    assert page.evaluate(CANVAS, "#numpyvae-demo-kl .numpyvae-kl-row") != row_before
    page.evaluate(SCROLL_TO, "#numpyvae-demo-kl")
    page.screenshot(path=str(SHOTS / "demo-kl.png"))
    page.goto(server, wait_until="load")
    page.screenshot(path=str(SHOTS / "home.png"))  # its first box points to the explorer

    ctx.close()

    # offline from the files themselves (file://, where fetch would fail): the weights are
    # scripts. Only the theme's search index is missing there, as on every page of the site.
    ctx = browser.new_context()
    local = ctx.new_page()
    failed, local_errors = [], []
    local.on("requestfailed", lambda r: failed.append(r.url))
    local.on("pageerror", lambda e: local_errors.append(str(e)))
    local.goto((site / "explorer" / "index.html").as_uri(), wait_until="load")
    far = local.evaluate("window.numpyvaeExplorer.decode([3, -3])")
    np.testing.assert_allclose(far, vae.decode_mean(np.array([3, -3], np.float32)), rtol=0, atol=1e-5)
    assert all("/search/" in u for u in failed + local_errors), (local_errors, failed)
    ctx.close()

    # the same pages on a phone-sized screen: nothing wider than the screen, no error
    ctx, phone, remote_p, errors_p = _browser_context(browser, {"width": 390, "height": 844})
    for name, rel, sel in (("explorer", "explorer/", "#numpyvae-explorer"),
                           ("demo-reparam", "derivations/04_reparameterization/", "#numpyvae-demo-reparam"),
                           ("demo-kl", "derivations/09_prior_and_collapse/", "#numpyvae-demo-kl")):
        phone.goto(urljoin(server, rel), wait_until="load")
        phone.evaluate(SCROLL_TO, sel)
        wide = phone.evaluate(f"""() => Array.from(document.querySelectorAll('{sel} canvas'))
            .map(c => c.getBoundingClientRect().right).filter(r => r > window.innerWidth + 1)""")
        assert wide == [], f"{name}: canvases wider than a phone's screen"
        phone.screenshot(path=str(SHOTS / f"{name}-phone.png"))
    ctx.close()
    assert errors == [] and errors_p == [], (errors + errors_p)[:3]
    assert remote == [] and remote_p == [], (remote + remote_p)[:3]
