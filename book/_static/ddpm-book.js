/* The book's own script, loaded on every page after Sphinx's (see _config.yml html_js_files).
 *
 * 1. Search-result snippets show math typeset, not as TeX. Sphinx's searchtools.js builds a
 *    snippet from the text of the page it found, where math is TeX between \( and \); it cuts
 *    240 characters around the first search term, often through a formula. Here the page's
 *    text marks each formula, the snippet drops a formula that its ends cut through, and
 *    MathJax typesets the rest (without MathJax, the TeX is shown without its delimiters).
 *    The print-only table of contents at the top of each page is left out of the text.
 * 2. The search page keeps one search field: its own (the sidebar's field and the header's
 *    search button open a second one over it).
 * 3. An inline formula wider than its line scrolls sideways in it (class ddpm-math-scrolls,
 *    see ddpm-book.css), measured once MathJax has typeset the page and again on resize.
 * 4. Code names in tables (schedule.alphas_cumprod_prev[t]) may break after a dot, an
 *    underscore or an opening bracket, so that a table fits a laptop's column without
 *    breaking names anywhere (<wbr>: copying the name copies no extra character).
 * 5. A figure is not shrunk below LEGIBLE times the width it was drawn for, so that on a
 *    phone its text stays legible (the house style's smallest text, 10 pt, is 13.3 px at
 *    full size: at least 10.7 px). Each figure sits in a box of its own (ddpm-figure-box), in
 *    which a figure wider than the column scrolls sideways; the page does not. Frames of
 *    pixels shown zoomed (image-rendering: pixelated) hold no text and still shrink to fit.
 *    A side of the box with more of the figure beyond it fades out (classes ddpm-more-left,
 *    ddpm-more-right; see ddpm-book.css), so that a reader sees there is more to scroll to.
 */
(() => {
  "use strict";

  const OPEN = "\uE000"; // private-use characters: never in the book's text
  const CLOSE = "\uE001";

  /* Display math as one inline formula: environments that need display mode become their
     inline forms, and labels or numbers go. */
  const inlineTeX = (tex) =>
    tex
      .trim()
      .replace(/^\\\[|\\\]$/g, "")
      .replace(/^\\\(|\\\)$/g, "")
      .replace(/\\(begin|end)\{(align|alignat|gather)\*?\}/g, "\\$1{$2ed}")
      .replace(/\\(begin|end)\{(equation|multline|split)\*?\}/g, "")
      .replace(/\\(label|tag)\{[^}]*\}|\\nonumber|\\notag/g, "")
      .trim();

  const pageText = (htmlString, anchor) => {
    const page = new DOMParser().parseFromString(htmlString, "text/html");
    const drop = ".headerlink, script, style, .onlyprint, .eqno, .ddpm-scrubber-data";
    page.querySelectorAll(drop).forEach((el) => el.remove());
    page.querySelectorAll(".math").forEach((el) => {
      el.textContent = OPEN + inlineTeX(el.textContent) + CLOSE;
    });
    const main = page.querySelector('[role="main"]');
    const part = (anchor && page.querySelector(`[role="main"] ${anchor}`)) || main;
    return part ? part.textContent : "";
  };

  const typesetSnippet = (summary) => {
    let text = summary.textContent;
    const firstClose = text.indexOf(CLOSE);
    const firstOpen = text.indexOf(OPEN);
    if (firstClose !== -1 && (firstOpen === -1 || firstClose < firstOpen)) {
      text = "..." + text.slice(firstClose + 1); // the snippet starts inside a formula
    }
    const lastOpen = text.lastIndexOf(OPEN);
    if (lastOpen !== -1 && text.indexOf(CLOSE, lastOpen) === -1) {
      text = text.slice(0, lastOpen).trimEnd() + " ..."; // it ends inside one
    }
    const mathjax = window.MathJax && MathJax.typesetPromise && MathJax.startup;
    summary.textContent = "";
    text.split(new RegExp(`${OPEN}([^${CLOSE}]*)${CLOSE}`)).forEach((piece, i) => {
      if (i % 2 === 0) {
        summary.append(piece);
        return;
      }
      // nohighlight: sphinx_highlight.js marks search terms in the snippet, but not in here.
      const math = document.createElement("span");
      math.className = "ddpm-search-math nohighlight";
      math.textContent = mathjax ? `\\(${piece}\\)` : piece;
      summary.append(math);
    });
    if (mathjax) {
      MathJax.startup.promise
        .then(() => MathJax.typesetPromise([summary]))
        .catch((error) => console.warn("[ddpm-book] search snippet not typeset:", error));
    }
  };

  const fixSearch = () => {
    if (typeof Search === "undefined" || !Search.makeSearchSummary || Search.ddpmFixed) return;
    Search.ddpmFixed = true;
    const makeSearchSummary = Search.makeSearchSummary;
    Search.htmlToText = pageText;
    Search.makeSearchSummary = (htmlText, keywords, anchor) => {
      const summary = makeSearchSummary(htmlText, keywords, anchor);
      if (summary) typesetSnippet(summary);
      return summary;
    };
  };

  const oneSearchField = () => {
    if (!document.querySelector("#main-content form.bd-search")) return; // not the search page
    document
      .querySelectorAll(".bd-sidebar-primary .search-button__button, .bd-header-article .search-button__button")
      .forEach((button) => button.classList.add("d-none"));
  };

  const breakableNames = () => {
    document.querySelectorAll(".bd-article table code.literal span.pre").forEach((span) => {
      const parts = span.textContent.split(/(?<=[._([,/])(?=.)/);
      if (parts.length < 2) return;
      span.textContent = "";
      parts.forEach((part, i) => {
        if (i) span.append(document.createElement("wbr"));
        span.append(part);
      });
    });
  };

  const markWideFormulas = () => {
    document.querySelectorAll("span.math").forEach((math) => {
      const formula = math.querySelector("mjx-container");
      if (!formula) return;
      const wide = formula.getBoundingClientRect().width > math.getBoundingClientRect().width + 1;
      math.classList.toggle("ddpm-math-scrolls", wide);
    });
  };

  const LEGIBLE = 0.8;
  const markHiddenSides = (box) => {
    const hidden = box.scrollWidth - box.clientWidth;
    box.classList.toggle("ddpm-more-left", box.scrollLeft > 1);
    box.classList.toggle("ddpm-more-right", box.scrollLeft < hidden - 1);
  };
  const keepFiguresLegible = () => {
    const boxes = [];
    document.querySelectorAll(".bd-article .cell_output img, .bd-article figure img").forEach((img) => {
      const width = parseFloat(img.style.width);
      if (!width || img.style.imageRendering === "pixelated" || img.closest(".ddpm-figure-box")) return;
      const box = document.createElement("div");
      box.className = "ddpm-figure-box";
      img.replaceWith(box);
      box.append(img);
      img.style.minWidth = `${Math.min(width, Math.round(LEGIBLE * width))}px`;
      box.addEventListener("scroll", () => markHiddenSides(box), { passive: true });
      img.addEventListener("load", () => markHiddenSides(box));
      markHiddenSides(box);
      boxes.push(box);
    });
    window.addEventListener("resize", () => boxes.forEach(markHiddenSides));
  };

  window.addEventListener("load", () => {
    const startup = window.MathJax && MathJax.startup && MathJax.startup.promise;
    if (!startup) return;
    startup.then(markWideFormulas);
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(markWideFormulas, 200);
    });
  });

  // searchtools.js runs the search when the document has loaded; patch it before that, now
  // if it came before this script, else first thing on DOMContentLoaded (this listener was
  // added before its own).
  if (typeof Search !== "undefined") fixSearch();
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => {
      fixSearch();
      oneSearchField();
      breakableNames();
      keepFiguresLegible();
    });
  } else {
    oneSearchField();
    breakableNames();
    keepFiguresLegible();
  }
})();
