/* qflowui JSON tree: "copy value" and "copy path" for the row under the pointer or focus.
 * One small toolbar moves to the hovered row, so a 10 MB payload's tree does not carry two
 * buttons per node. Values are copied exactly as the server has them (masked): the row's
 * JSON pointer is asked from the payload's download URL. Expand/collapse, lazy subtrees,
 * "show more", table view and search are plain <details> and htmx: no code here. */
(function () {
  "use strict";

  var tools = null;

  // Shared with the rest of the site: static/js/app.js defines it (loaded on every page).
  function copyText(text) {
    return window.qflowui.copyText(text);
  }

  function button(label, action, title) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = title;
    b.setAttribute("data-jt-copy", action);
    return b;
  }

  function toolbar() {
    if (!tools) {
      tools = document.createElement("span");
      tools.className = "jt-tools";
      tools.appendChild(button("copy value", "value", "Copy this value (JSON; strings as text)"));
      tools.appendChild(button("copy path", "path", "Copy this value's JSON pointer"));
    }
    return tools;
  }

  function rowFrom(target) {
    var row = target.closest && target.closest(".jt-n");
    if (!row || !row.closest(".payload")) { return null; }
    return row;
  }

  function show(row) {
    var bar = toolbar();
    if (bar.parentNode !== row) { row.appendChild(bar); }
    bar.classList.add("on");
  }

  document.addEventListener("mouseover", function (event) {
    var row = rowFrom(event.target);
    if (row) { show(row); }
  });
  document.addEventListener("focusin", function (event) {
    var row = rowFrom(event.target);
    if (row) { show(row); }
  });

  function flash(el, text) {
    var old = el.textContent;
    el.textContent = text;
    window.setTimeout(function () { el.textContent = old; }, 1200);
  }

  document.addEventListener("click", function (event) {
    var b = event.target.closest("[data-jt-copy]");
    if (!b) { return; }
    // Inside a <summary> a click would also fold the node.
    event.preventDefault();
    event.stopPropagation();
    var row = b.closest(".jt-n");
    var payload = b.closest(".payload");
    if (!row || !payload) { return; }
    var path = row.getAttribute("data-p") || "";
    if (b.getAttribute("data-jt-copy") === "path") {
      copyText(path || "/").then(function () { flash(b, "copied"); }, function () { flash(b, "failed"); });
      return;
    }
    var url = payload.getAttribute("data-json-url") + "?path=" + encodeURIComponent(path);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var value;
        try { value = JSON.parse(text); } catch (e) { value = undefined; }
        return copyText(typeof value === "string" ? value : text);
      })
      .then(function () { flash(b, "copied"); }, function () { flash(b, "failed"); });
  });
})();
