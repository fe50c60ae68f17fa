// Follows answers being written: EventSource on each unfinished answer, tokens appended as they come, the
// sources panel filled, and at `done` the [n] markers the server validated turned into links. The browser's
// own reconnect sends Last-Event-ID, so a dropped connection resumes without losing or repeating tokens.
(function () {
  "use strict";

  // The same marker shapes as the server's citation parser: [1], [2, 3], [1-3], [1; 4-5].
  var MARKER = /\[\s*\d{1,4}(?:\s*[-\u2013]\s*\d{1,4})?(?:\s*[,;]\s*\d{1,4}(?:\s*[-\u2013]\s*\d{1,4})?)*\s*\]/g;
  var ITEM = /(\d{1,4})(?:\s*[-\u2013]\s*(\d{1,4}))?/g;

  function markerNumbers(marker, urls) {
    var numbers = [], match;
    ITEM.lastIndex = 0;
    while ((match = ITEM.exec(marker)) !== null) {
      var low = parseInt(match[1], 10), high = match[2] ? parseInt(match[2], 10) : low;
      if (high < low || high - low > 50) { return null; }
      for (var n = low; n <= high; n++) {
        if (!Object.prototype.hasOwnProperty.call(urls, n)) { return null; }
        numbers.push(n);
      }
    }
    return numbers;
  }

  function renderText(box, text, citations) {
    var urls = {};
    (citations || []).forEach(function (c) { if (c.url) { urls[c.number] = c.url; } });
    box.textContent = "";
    var last = 0, match;
    MARKER.lastIndex = 0;
    while ((match = MARKER.exec(text)) !== null) {
      var numbers = markerNumbers(match[0], urls);
      if (!numbers) { continue; }  // not a valid citation: stays plain text
      box.appendChild(document.createTextNode(text.slice(last, match.index)));
      numbers.forEach(function (n) {
        var link = document.createElement("a");
        link.className = "citation";
        link.href = urls[n];
        link.textContent = "[" + n + "]";
        box.appendChild(link);
      });
      last = match.index + match[0].length;
    }
    box.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderSources(list, sources) {
    list.textContent = "";
    sources.forEach(function (s) {
      var item = document.createElement("li");
      item.className = "source" + (s.nearest ? " nearest" : "");
      item.value = s.number;
      var link = document.createElement("a");
      link.href = s.url;
      link.textContent = s.title + ", page " + s.page;
      item.appendChild(link);
      if (s.nearest) {
        var note = document.createElement("span");
        note.className = "muted";
        note.textContent = " (nearest passage, not evidence)";
        item.appendChild(note);
      }
      if (s.text) {
        var quote = document.createElement("blockquote");
        quote.className = "source-text";
        quote.textContent = s.text.length > 600 ? s.text.slice(0, 600) + "\u2026" : s.text;
        item.appendChild(quote);
      }
      list.appendChild(item);
    });
  }

  function setStatus(answer, status) {
    answer.dataset.status = status;
    answer.querySelector(".answer-status").textContent = status;
    var working = answer.querySelector(".working");
    if (working && (status === "done" || status === "abstained" || status === "failed")) { working.remove(); }
  }

  function follow(answer) {
    var text = answer.querySelector(".answer-text");
    var sources = answer.querySelector(".sources");
    var written = "";
    var stream = new EventSource(answer.dataset.streamUrl);
    setStatus(answer, "streaming");

    // While the answer waits its turn: where it stands, or that the queue itself cannot be reached.
    stream.addEventListener("queued", function (e) {
      var info = JSON.parse(e.data), working = answer.querySelector(".working");
      if (!working) { return; }
      working.dataset.queued = "1";
      working.textContent = info.queue_down
        ? "The answer service's queue cannot be reached; your question is saved and will be answered when it is back."
        : (info.position === 1 ? "Next in line for the answer service\u2026"
          : "Waiting for the answer service: number " + info.position + " in the queue\u2026");
    });
    stream.addEventListener("sources", function (e) {
      var working = answer.querySelector(".working");
      if (working && working.dataset.queued) { working.textContent = "working\u2026"; delete working.dataset.queued; }
      renderSources(sources, JSON.parse(e.data));
    });
    stream.addEventListener("token", function (e) {
      written += e.data;
      text.textContent = written;
    });
    stream.addEventListener("restart", function () {
      written = "";
      text.textContent = "";
      sources.textContent = "";
    });
    stream.addEventListener("done", function (e) {
      stream.close();
      var result = JSON.parse(e.data);
      if (result.unusable) {
        // Not an answer (echoed instructions, copied markup, a loop): what streamed in is taken away.
        text.textContent = "";
        var unusable = document.createElement("p");
        unusable.className = "unusable";
        unusable.setAttribute("role", "alert");
        unusable.textContent = "The model's output is not a usable answer (it " + result.unusable + "), so it is " +
          "not shown. Read the passages below: they are what the search found, not cited evidence.";
        answer.insertBefore(unusable, text);
        setStatus(answer, result.status);
        return;
      }
      renderText(text, result.text, result.citations);
      if (result.withheld && !answer.querySelector(".withheld")) {
        // A source is no longer readable: the server sent no text, and what streamed before is dropped too.
        var withheld = document.createElement("p");
        withheld.className = "withheld";
        withheld.setAttribute("role", "note");
        withheld.textContent = "This answer is hidden: it drew on documents you can no longer read.";
        answer.insertBefore(withheld, text);
      }
      if (result.status === "done" && !result.withheld && !(result.citations || []).length &&
          !answer.querySelector(".uncited")) {
        var uncited = document.createElement("p");
        uncited.className = "uncited";
        uncited.setAttribute("role", "note");
        uncited.textContent = "This answer cites none of the sources: do not rely on it; check the passages below.";
        text.insertAdjacentElement("afterend", uncited);
      }
      if (result.status === "abstained" && !answer.querySelector(".abstained")) {
        var notice = document.createElement("p");
        notice.className = "abstained";
        notice.textContent = "Not enough evidence: nothing you can read answers this.";
        answer.insertBefore(notice, text);
      }
      setStatus(answer, result.status);
    });
    // "error" is both the server's event (with data) and EventSource's connection error (without): on the
    // latter the browser reconnects by itself.
    stream.addEventListener("error", function (e) {
      if (!e.data) { return; }
      stream.close();
      var problem = document.createElement("p");
      problem.className = "answer-error";
      problem.setAttribute("role", "alert");
      problem.textContent = JSON.parse(e.data).message;
      answer.insertBefore(problem, sources);
      setStatus(answer, "failed");
    });
  }

  document.querySelectorAll(".answer[data-stream-url]").forEach(follow);
})();
