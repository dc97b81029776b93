// MathJax 2 from the jupyter-server-mathjax package, copied into the site (the setup Jupyter's
// own HTML export uses): its combined TeX configuration, HTML-CSS output with the STIX-Web
// fonts it ships, so nothing is fetched from elsewhere. Typesets \( \) and \[ \] outside code
// (what pymdownx.arithmatex writes); sets <body data-mathjax="done"> when it has finished.
// A page without maths (none marked, no \( in its text: the navigation's titles) does not
// load MathJax at all.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js", "noErrors.js", "noUndefined.js"] },
  tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: false,
    // The whole page outside code blocks: the maths arithmatex marked, and the same maths
    // in the headings that the table of contents repeats as plain text.
  },
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web",
                imageFont: null, linebreaks: { automatic: true },
                // Its stand-in font, a url(about:blank) that Chromium refuses with a console
                // error, as a local font that does not exist: the same missing font, no request.
                styles: { "@font-face": { "font-family": "MathJax_Blank",
                                          src: "local('MathJax Blank, none')" } } },
  MMLorHTML: { prefer: "HTML" },         // HTML-CSS in every browser, never native MathML
  "fast-preview": { disabled: true },
  // Hidden MathML for screen readers would ask for TeX fonts this package does not ship.
  AssistiveMML: { disabled: true },
  menuSettings: { CHTMLpreview: false, assistiveMML: false },
  showMathMenu: false,
  messageStyle: "none",
  AuthorInit: function () {
    MathJax.Hub.Register.StartupHook("End", function () {
      document.body.dataset.mathjax = "done";
    });
  },
};

(function () {
  const src = document.currentScript.src.replace(/mathjax-config\.js.*$/, "mathjax/MathJax.js");
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector(".arithmatex") || document.body.textContent.includes("\\(")) {
      const script = document.createElement("script");
      script.src = src;
      document.head.appendChild(script);
    } else {
      document.body.dataset.mathjax = "done";
    }
  });
})();
