// The revision graph page: highlight what the search found and the open revision.
// A static file (the CSP is script-src 'self'); the pages work without it.
// The address (?revision=<id>) is kept by htmx from the server's HX-Push-Url.
(function () {
  "use strict";

  function rowsAndNodes(id) {
    return document.querySelectorAll('.graph-body [data-rev="' + CSS.escape(id) + '"]');
  }

  function mark(ids, className) {
    document.querySelectorAll(".graph-body ." + className).forEach(function (el) {
      el.classList.remove(className);
    });
    ids.forEach(function (id) {
      rowsAndNodes(id).forEach(function (el) {
        el.classList.add(className);
      });
    });
  }

  function inViewport(el) {
    var box = el.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight;
  }

  // Scroll the graph's own box so the row sits in the middle of the part of the
  // box on screen (the search field above stays in view); scroll the page only
  // if the row is still not visible.
  function reveal(id) {
    var row = document.getElementById("rev-" + id);
    if (!row) return;
    var box = row.closest(".graph-body");
    if (box && box.scrollHeight > box.clientHeight) {
      var frame = box.getBoundingClientRect();
      var top = Math.max(frame.top, 0);
      var bottom = Math.min(frame.bottom, window.innerHeight);
      if (bottom - top < 3 * row.offsetHeight) {
        top = frame.top;
        bottom = frame.bottom;
      }
      box.scrollTop = row.offsetTop + row.offsetHeight / 2 - ((top + bottom) / 2 - frame.top);
    }
    if (!inViewport(row)) row.scrollIntoView({ block: "nearest" });
  }

  function searchMatches() {
    var results = document.querySelector("#graph-search-results .graph-search-results");
    var list = results ? results.getAttribute("data-matches") || "" : "";
    return list.split(" ").filter(Boolean);
  }

  function openRevision() {
    var detail = document.querySelector("#revision-detail article.revision-detail");
    return detail ? detail.getAttribute("data-revision") : null;
  }

  function showSearch(scroll) {
    var ids = searchMatches();
    mark(ids, "search-match");
    if (scroll && ids.length) reveal(ids[0]);
  }

  function showOpenRevision(scroll) {
    var id = openRevision();
    mark(id ? [id] : [], "is-selected");
    if (scroll && id) reveal(id);
  }

  // A whole page (first load, a shared link, or htmx restoring a history entry):
  // show the open revision where it is, else the first search match.
  function showPage() {
    var opened = openRevision();
    showSearch(!opened);
    showOpenRevision(true);
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    if (!target) return;
    if (target.id === "graph-search-results") showSearch(true);
    if (target.id === "revision-detail") showOpenRevision(false);
  });
  document.addEventListener("htmx:historyRestore", showPage);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", showPage);
  } else {
    showPage();
  }
})();
