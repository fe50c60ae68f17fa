// A question being typed survives what interrupts it: a reload, an idle logout and the login that follows (the
// draft is kept in this tab's sessionStorage, which ends with the tab, not on disk). Ctrl+Enter (Cmd+Enter) asks.
(function () {
  "use strict";
  var store;
  try { store = window.sessionStorage; } catch (e) { store = null; }
  // A draft the server has received (the page shows it as asked) is no longer a draft.
  if (store) {
    var asked = Array.prototype.map.call(document.querySelectorAll("[data-question]"), function (el) {
      return el.getAttribute("data-question").trim();
    });
    for (var i = store.length - 1; i >= 0; i--) {
      var name = store.key(i);
      if (name && name.indexOf("docs:draft:") === 0 && asked.indexOf((store.getItem(name) || "").trim()) >= 0) {
        store.removeItem(name);
      }
    }
  }
  document.querySelectorAll("form.ask-form textarea[name=question]").forEach(function (box) {
    var key = "docs:draft:" + (box.form.getAttribute("action") || location.pathname);
    if (store && !box.value && store.getItem(key)) { box.value = store.getItem(key); }
    box.addEventListener("input", function () {
      if (!store) { return; }
      if (box.value.trim()) { store.setItem(key, box.value); } else { store.removeItem(key); }
    });
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (box.form.requestSubmit) { box.form.requestSubmit(); } else { box.form.submit(); }
      }
    });
  });
})();
