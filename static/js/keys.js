// Keyboard: j/k move through the rows of a list, Enter opens the row, / focuses the search,
// ? shows the keys, [ and ] step through an execution's steps. Never while typing.
(function () {
  "use strict";

  function typing(target) {
    if (!target) { return false; }
    var tag = target.tagName;
    return target.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  }

  function move(step) {
    var list = rows();
    if (!list.length) { return; }
    var current = list.indexOf(document.activeElement);
    var next = current < 0 ? (step > 0 ? 0 : list.length - 1)
      : Math.max(0, Math.min(list.length - 1, current + step));
    list.forEach(function (row) { row.classList.remove("row-current"); });
    var row = list[next];
    row.setAttribute("tabindex", "-1");
    row.classList.add("row-current");
    row.focus();
    row.scrollIntoView({ block: "nearest" });
  }

  function steps() {
    return Array.prototype.slice.call(document.querySelectorAll(".steps-table tr[data-step]"));
  }

  function stepTo(delta) {
    var list = steps();
    if (!list.length) { return; }
    var params = new URLSearchParams(window.location.search);
    var current = params.get("step");
    var index = -1;
    list.forEach(function (row, i) { if (row.getAttribute("data-step") === current) { index = i; } });
    var next = index < 0 ? (delta > 0 ? 0 : list.length - 1)
      : Math.max(0, Math.min(list.length - 1, index + delta));
    var link = list[next].querySelector("a");
    if (link) { link.click(); }
  }

  function help() {
    var dialog = document.getElementById("keys-help");
    if (!dialog) { return; }
    if (dialog.open) { dialog.close(); } else { dialog.showModal(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var key = event.key;
    if (key === "j") { move(1); }
    else if (key === "k") { move(-1); }
    else if (key === "Enter" && document.activeElement && document.activeElement.matches("tr[data-href]")) {
      window.location.assign(document.activeElement.getAttribute("data-href"));
    }
    else if (key === "/") {
      var search = document.querySelector("input[type=search]");
      if (!search) { return; }
      search.focus();
      search.select();
    }
    else if (key === "?") { help(); }
    else if (key === "]") { stepTo(1); }
    else if (key === "[") { stepTo(-1); }
    else { return; }
    event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-keys-help]")) { help(); }
  });
})();
