// Bulk upload with a line per file: each file goes in its own request, so each gets its own progress bar and
// outcome (queued / duplicate / rejected and why) and one bad file never holds up the rest. Without
// JavaScript the same form posts every file at once and the server lists the outcomes.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var list = document.getElementById("upload-list");
  var zone = document.getElementById("dropzone");
  var inputs = [document.getElementById("upload-files"), document.getElementById("upload-folder")];
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var ACCEPTED = /\.(pdf|zip)$/i;
  var PARALLEL = 2;
  var LABELS = { queued: "Uploaded", duplicate: "Duplicate", rejected: "Rejected", error: "Not uploaded" };
  var queue = [];
  var running = 0;
  var report = document.getElementById("upload-report");
  var batchUrl = form.getAttribute("data-batch-url");
  var batchId = "";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function newItem(name) {
    var li = el("li", "upload-item");
    var state = el("span", "item-state");
    state.append(el("span", "outcome", "Waiting"));
    li.append(el("span", "name", name), state, el("span", "detail"));
    list.append(li);
    return li;
  }

  function setOutcome(li, outcome) {
    li.setAttribute("data-outcome", outcome.status);
    // Problems first: a file not added goes to the top of the list, where it is seen without scrolling.
    if (outcome.status === "rejected" || outcome.status === "error") { list.prepend(li); }
    var label = li.querySelector(".name");
    label.textContent = outcome.name;
    if (outcome.archive) { label.append(el("span", "muted small archive", " in " + outcome.archive)); }
    var state = li.querySelector(".item-state");
    state.textContent = "";
    state.append(el("span", "outcome", LABELS[outcome.status] || outcome.status));
    var detail = li.querySelector(".detail");
    detail.textContent = outcome.reason || "";
    if (outcome.status === "queued" && outcome.document_id) {
      // From here on progress.js follows the document through extraction and indexing.
      li.setAttribute("data-document-id", String(outcome.document_id));
      li.setAttribute("data-status", "queued");
      li.setAttribute("data-active", "");
      var bar = el("progress", "doc-progress", "0 %");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", "Processing of " + outcome.name);
      state.append(" · ", el("span", "doc-status", "Queued"), " ", bar);
      detail.append(el("span", "doc-error"));
    }
  }

  function showOutcomes(li, outcomes) {
    if (!outcomes.length) { setOutcome(li, { name: li.querySelector(".name").textContent, status: "rejected", reason: "nothing in it could be added" }); return; }
    // A .zip yields one outcome per member: the first reuses the archive's line, the rest follow it.
    var anchor = li;
    outcomes.forEach(function (outcome, index) {
      var target = index === 0 ? li : newItem(outcome.name);
      if (index > 0) { anchor.after(target); }
      setOutcome(target, outcome);
      anchor = target;
    });
    document.dispatchEvent(new CustomEvent("docs:watch"));
  }

  function fail(li, reason) {
    setOutcome(li, { name: li.querySelector(".name").textContent, status: "error", reason: reason });
  }

  function send(job) {
    running += 1;
    var li = job.li;
    var state = li.querySelector(".item-state");
    state.textContent = "";
    var bar = el("progress", "upload-progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + job.file.name);
    state.append(el("span", "outcome", "Uploading"), " ", bar);
    var body = new FormData();
    body.append("csrfmiddlewaretoken", token);
    body.append("files", job.file, job.file.name);
    if (job.batch) { body.append("batch", job.batch); }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", token);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { bar.value = Math.round((100 * event.loaded) / event.total); }
    });
    xhr.addEventListener("load", function () {
      var data = null;
      try { data = JSON.parse(xhr.responseText); } catch (ignored) { data = null; }
      if (xhr.status === 200 && data && data.outcomes) {
        showOutcomes(li, data.outcomes);
      } else if (xhr.status === 403) {
        fail(li, "your role on this collection does not allow uploads");
      } else {
        fail(li, (data && data.error) || "the server refused it (HTTP " + xhr.status + ")");
      }
      done();
    });
    xhr.addEventListener("error", function () { fail(li, "network error: not uploaded"); done(); });
    xhr.addEventListener("abort", function () { fail(li, "upload cancelled"); done(); });
    xhr.send(body);
  }

  function done() {
    running -= 1;
    pump();
    if (running === 0 && queue.length === 0) { document.dispatchEvent(new CustomEvent("docs:uploaded")); }
  }

  function pump() {
    while (running < PARALLEL && queue.length) { send(queue.shift()); }
  }

  // One upload is one report the server keeps (an upload batch): it is opened first, with the files refused
  // here by their extension, and every file sent names it. If it cannot be opened, each request makes its own.
  function openBatch(refused) {
    if (!batchUrl || !window.fetch) { return Promise.resolve(""); }
    var body = new FormData();
    body.append("csrfmiddlewaretoken", token);
    refused.forEach(function (name) { body.append("not_sent", name); });
    return fetch(batchUrl, { method: "POST", body: body, credentials: "same-origin",
                             headers: { Accept: "application/json", "X-CSRFToken": token } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (batch) {
        if (report) {
          report.querySelector("a").href = batch.url;
          report.hidden = false;
        }
        return String(batch.id);
      })
      .catch(function () { return ""; });
  }

  function enqueue(files) {
    var jobs = [];
    var refused = [];
    files.forEach(function (file) {
      var name = file.webkitRelativePath || file.name;
      var li = newItem(name);
      if (!ACCEPTED.test(file.name)) {
        setOutcome(li, { name: name, status: "rejected", reason: "not a PDF or .zip (not sent)" });
        refused.push(name);
        return;
      }
      jobs.push({ file: file, li: li });
    });
    openBatch(refused).then(function (id) {
      batchId = id;
      jobs.forEach(function (job) { job.batch = batchId; queue.push(job); });
      pump();
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var files = [];
    inputs.forEach(function (input) {
      if (input) { files = files.concat(Array.from(input.files)); input.value = ""; }
    });
    if (!files.length) { newItem("Choose files or a folder first."); return; }
    enqueue(files);
  });

  // Dropped folders are walked recursively; readEntries returns a directory in pieces, so read until empty.
  function walk(entry) {
    if (entry.isFile) {
      return new Promise(function (resolve) { entry.file(function (file) { resolve([file]); }, function () { resolve([]); }); });
    }
    if (!entry.isDirectory) { return Promise.resolve([]); }
    var reader = entry.createReader();
    var found = [];
    return new Promise(function (resolve) {
      (function more() {
        reader.readEntries(function (entries) {
          if (!entries.length) { resolve(found); return; }
          Promise.all(entries.map(walk)).then(function (lists) {
            lists.forEach(function (files) { found = found.concat(files); });
            more();
          });
        }, function () { resolve(found); });
      }());
    });
  }

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("dragging");
    var items = Array.from(event.dataTransfer.items || []);
    var entries = items.map(function (item) { return item.webkitGetAsEntry ? item.webkitGetAsEntry() : null; });
    if (entries.length && entries.every(Boolean)) {
      Promise.all(entries.map(walk)).then(function (lists) { enqueue([].concat.apply([], lists)); });
    } else {
      enqueue(Array.from(event.dataTransfer.files));
    }
  });
}());
