// Live processing status on a collection page. Every element with data-document-id and data-active (rows of
// the documents table, items of the upload list) is updated from status.json every 1.5 s until its document
// is ready or failed; then the table is fetched again so its links and Retry buttons match the server.
(function () {
  "use strict";
  var root = document.querySelector("[data-status-url]");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-status-url");
  var EVERY_MS = 1500;
  var watched = new Set();
  var timer = null;
  var changed = false;
  var failures = 0;

  function collect() {
    document.querySelectorAll("[data-document-id][data-active]").forEach(function (el) {
      watched.add(el.getAttribute("data-document-id"));
    });
  }

  function setText(el, selector, text) {
    var target = el.querySelector(selector);
    if (target) { target.textContent = text; }
  }

  function showError(el, doc) {
    var box = el.querySelector(".doc-error");
    if (!box) { return; }
    box.textContent = "";
    if (doc.status !== "failed") { return; }
    var reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = doc.error;
    var hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = doc.hint;
    box.append(reason, " ", hint);
  }

  function update(doc) {
    document.querySelectorAll('[data-document-id="' + doc.id + '"]').forEach(function (el) {
      if (el.getAttribute("data-status") !== doc.status) { changed = true; }
      el.setAttribute("data-status", doc.status);
      setText(el, ".doc-status", doc.status_label);
      var bar = el.querySelector(".doc-progress");
      if (bar) {
        bar.value = doc.progress;
        bar.textContent = doc.progress + " %";
        bar.hidden = doc.terminal;
      }
      setText(el, ".doc-pages", doc.pages_label);
      showError(el, doc);
      if (doc.terminal) { el.removeAttribute("data-active"); }
    });
    if (doc.terminal) { watched.delete(String(doc.id)); }
  }

  function updateCounts(counts) {
    Object.keys(counts || {}).forEach(function (status) {
      var el = document.querySelector('[data-count="' + status + '"]');
      if (el) { el.textContent = counts[status]; }
    });
  }

  function refreshTable() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("documents");
        if (fresh) { root.innerHTML = fresh.innerHTML; }
        schedule();
      })
      .catch(function () { /* the next upload or a reload shows the table */ });
  }

  function poll() {
    timer = null;
    collect();
    if (watched.size === 0) {
      if (changed) { changed = false; refreshTable(); }
      return;
    }
    fetch(url + "?ids=" + Array.from(watched).join(","), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (data) {
        failures = 0;
        var seen = new Set();
        data.documents.forEach(function (doc) { seen.add(String(doc.id)); update(doc); });
        // Rows the server no longer returns were deleted meanwhile: stop asking for them.
        watched.forEach(function (id) { if (!seen.has(id)) { watched.delete(id); } });
        updateCounts(data.counts);
        schedule();
      })
      .catch(function () {
        failures += 1;
        schedule(Math.min(EVERY_MS * Math.pow(2, failures), 15000));
      });
  }

  function schedule(delay) {
    if (timer === null) { timer = window.setTimeout(poll, delay || EVERY_MS); }
  }

  document.addEventListener("docs:watch", function () { schedule(); });
  document.addEventListener("docs:uploaded", function () { changed = true; schedule(); });
  schedule();
}());
