// The run form's helpers. The server validates everything; this only makes the form nicer.
// Loaded as a file (CSP: script-src 'self'); no inline handlers anywhere.
(function () {
  "use strict";

  function utf8Size(text) {
    return window.TextEncoder ? new TextEncoder().encode(text).length : text.length;
  }

  function describeJson(text, maxBytes) {
    if (!text.trim()) return { ok: true, value: {} };
    // The server's limit (RUNS_MAX_INPUT_BYTES), counted as it counts: UTF-8 bytes.
    if (maxBytes && text.length > maxBytes / 4 && utf8Size(text) > maxBytes) {
      return { ok: false, message: "Too large: the limit is " + maxBytes.toLocaleString() + " bytes." };
    }
    try {
      var value = JSON.parse(text);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return { ok: false, message: "The input must be a JSON object ({…})." };
      }
      return { ok: true, value: value };
    } catch (err) {
      return { ok: false, message: "Invalid JSON: " + err.message };
    }
  }

  function showStatus(el, result) {
    if (!el) return;
    el.textContent = result.ok ? "Valid JSON object" : result.message;
    el.classList.toggle("is-bad", !result.ok);
    el.classList.toggle("is-ok", result.ok);
  }

  function setupJson(button) {
    var area = document.getElementById(button.getAttribute("data-format-json"));
    if (!area) return;
    var status = document.getElementById(area.id + "_status");
    var maxBytes = parseInt(area.getAttribute("data-max-bytes") || "0", 10);
    button.addEventListener("click", function () {
      var result = describeJson(area.value, maxBytes);
      showStatus(status, result);
      if (result.ok) area.value = JSON.stringify(result.value, null, 2);
    });
    var timer = null;
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { showStatus(status, describeJson(area.value, maxBytes)); }, 300);
    });
  }

  function setupWorkflowPicker(form) {
    var filter = form.querySelector("#workflow-filter");
    var select = form.querySelector("#id_workflow");
    if (!select) return;
    if (filter) {
      filter.addEventListener("input", function () {
        var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
        Array.prototype.forEach.call(select.options, function (option) {
          var text = option.textContent.toLowerCase();
          var match = words.every(function (w) { return text.indexOf(w) !== -1; });
          option.hidden = !match && !option.selected;
        });
      });
    }
    select.addEventListener("change", function () {
      var chosen = select.options[select.selectedIndex];
      var cloud = chosen ? (chosen.getAttribute("data-cloud") || "").toUpperCase() : "";
      form.querySelectorAll("details.cloud-group[data-cloud]").forEach(function (group) {
        if (cloud && group.getAttribute("data-cloud").toUpperCase() === cloud) group.open = true;
      });
    });
  }

  function setupSubmitGuard(form) {
    // Correctness is server-side (the idempotency key); this spares a double click.
    form.addEventListener("submit", function (event) {
      if (form.classList.contains("is-submitting")) {
        event.preventDefault();
        return;
      }
      form.classList.add("is-submitting");
      // Disabled later, so that the clicked button's action=... is still sent.
      setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
    window.addEventListener("pageshow", function () {
      form.classList.remove("is-submitting");
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
    });
  }

  function setupStalePreview(form) {
    var confirm = form.querySelector("[data-confirm]");
    var note = form.querySelector("[data-changed-note]");
    if (!confirm) return;
    function changed(event) {
      if (event.target.id === "workflow-filter") return;
      confirm.disabled = true;
      confirm.title = "The form changed since the preview: preview again";
      if (note) note.hidden = false;
    }
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
  }

  // After Preview, show the preview and its Confirm button (they are below the form).
  // Without JavaScript the Preview button posts to ...#preview, which gets there too.
  function revealPreview() {
    var section = document.getElementById("preview");
    if (!section) return;
    var form = section.closest("form");
    var actions = form ? form.querySelector(".run-actions") : null;
    var reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    // For keyboard and screen reader users: Tab goes on to Preview again, then Confirm.
    section.focus({ preventScroll: true });
    var margin = 12;
    var top = section.getBoundingClientRect().top + window.pageYOffset - margin;
    var bottom = (actions || section).getBoundingClientRect().bottom + window.pageYOffset + margin;
    // The whole preview when it fits, else as much of it as fits with Confirm in view.
    var target = bottom - top <= window.innerHeight ? top : bottom - window.innerHeight;
    window.scrollTo({ top: Math.max(0, target), behavior: reduce ? "auto" : "smooth" });
  }

  function init() {
    document.querySelectorAll("[data-format-json]").forEach(setupJson);
    revealPreview();
    document.querySelectorAll("form[data-run-form]").forEach(function (form) {
      setupWorkflowPicker(form);
      setupSubmitGuard(form);
      setupStalePreview(form);
    });
  }

  // Should a preview ever arrive by an htmx swap, reveal it the same way.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    if (target && (target.id === "preview" || (target.querySelector && target.querySelector("#preview")))) {
      revealPreview();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
