/* qflowui: the little behaviour pages need beyond htmx. No inline scripts: the CSP forbids them.
 * Everything is delegated from the document, so it keeps working after htmx swaps. */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a LAN: the async clipboard is unavailable, fall back to a selection.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }
  window.qflowui = window.qflowui || {};
  window.qflowui.copyText = copyText;

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    event.preventDefault();
    var label = button.textContent;
    copyText(button.getAttribute("data-copy")).then(
      function () { button.textContent = "copied"; button.classList.add("copied"); },
      function () { button.textContent = "failed"; }
    ).finally(function () {
      window.setTimeout(function () {
        button.textContent = label;
        button.classList.remove("copied");
      }, 1500);
    });
  });

  // A click anywhere on an execution's row opens it (links, buttons and a text selection
  // keep their own meaning; Ctrl/Cmd/middle click opens a new tab).
  function openRow(event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select, label, summary")) { return; }
    if (window.getSelection && String(window.getSelection()).length) { return; }
    var href = row.getAttribute("data-href");
    if (event.ctrlKey || event.metaKey || event.button === 1) {
      window.open(href, "_blank", "noopener");
    } else if (event.button === 0) {
      window.location.assign(href);
    }
  }
  document.addEventListener("click", openRow);
  document.addEventListener("auxclick", openRow);

  // The header's time-zone select applies at once; the Set button is for browsers without JS.
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) { select.form.requestSubmit(); }
  });

  // After htmx has changed the URL, come back to the URL as it is now, not as it was served.
  document.addEventListener("submit", function (event) {
    var next = event.target.querySelector("input[name=next]");
    if (next && event.target.method.toLowerCase() === "post") {
      next.value = window.location.pathname + window.location.search;
    }
  }, true);

  // Keep shared links short: leave empty filter fields out of the query string.
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (detail.verb !== "get" || !detail.formData) { return; }
    var empty = [];
    detail.formData.forEach(function (value, key) {
      if (value === "" && empty.indexOf(key) < 0) { empty.push(key); }
    });
    empty.forEach(function (key) {
      var kept = detail.formData.getAll(key).filter(function (v) { return v !== ""; });
      detail.formData.delete(key);
      kept.forEach(function (v) { detail.formData.append(key, v); });
    });
  });
})();
