// Render every formula that pymdownx.arithmatex marked (.arithmatex spans and divs) with the
// bundled KaTeX. A formula KaTeX cannot parse shows as a red .katex-error node (the build
// already refuses such formulas; tests/test_site.py checks that none reaches a page).
(function () {
  function strip(tex) {
    tex = tex.trim();
    if ((tex.startsWith("\\(") && tex.endsWith("\\)")) || (tex.startsWith("\\[") && tex.endsWith("\\]"))) {
      return tex.slice(2, -2);
    }
    return tex;
  }
  function render() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.getAttribute("data-katex") === "done") return;
      katex.render(strip(el.textContent), el, {
        displayMode: el.tagName !== "SPAN",
        throwOnError: false,
      });
      el.setAttribute("data-katex", "done");
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(render);  // Material's page-load stream (also fires on instant loads)
  } else {
    document.addEventListener("DOMContentLoaded", render);
  }
})();
