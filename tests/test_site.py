"""The course website: built strictly, then every page opened in headless Chromium.

Skipped when the ``docs`` extra is not installed (``pip install -e ".[docs]"``); the browser
part is skipped when Playwright or a Chromium cannot start (Debian: ``apt-get install
chromium``; another binary via ``NUMPYVAE_CHROMIUM``). Screenshots of one note page and one
gallery page go to ``.cache/numpyvae-site/screenshots/`` (or ``NUMPYVAE_SITE_SCREENSHOTS``).
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

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
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
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
    return sorted(p.stem for p in (ROOT / "derivations").glob("*.md") if p.name != "README.md")


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


# ------------------------------------------------------------------ in the browser

@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


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
    remote = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if host in ("127.0.0.1", "localhost") or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            remote.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
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
