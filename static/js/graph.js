/* qflowui step graph: pan and zoom the server-rendered SVG by changing its viewBox, keep the
 * view across htmx refreshes of a running execution, and mark the selected step.
 * Drag to pan; Ctrl/⌘ + wheel, the +/− buttons or the +/- keys zoom; 0 or "fit" resets.
 * No inline script or style anywhere (CSP): everything is delegated from the document. */
(function () {
  "use strict";

  var views = {};  // execution id -> {x, y, w, h} the user panned/zoomed to
  var MIN_SCALE = 0.1;
  var DRAG_THRESHOLD = 4;

  function svgOf(viewport) { return viewport.querySelector("svg.graph-svg"); }

  function executionId(el) {
    var live = el.closest("[data-execution-id]");
    return live ? live.getAttribute("data-execution-id") : "";
  }

  function natural(svg) {
    if (!svg.__natural) {
      var box = svg.viewBox.baseVal;
      svg.__natural = { x: box.x, y: box.y, w: box.width, h: box.height };
    }
    return svg.__natural;
  }

  function current(svg) {
    var box = svg.viewBox.baseVal;
    return { x: box.x, y: box.y, w: box.width, h: box.height };
  }

  function apply(viewport, view) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    views[executionId(viewport)] = view;
  }

  function zoom(viewport, factor, cx, cy) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    var base = natural(svg);
    var view = current(svg);
    var w = Math.max(base.w * MIN_SCALE, Math.min(base.w * 1.5, view.w / factor));
    var h = w * (view.h / view.w);
    // Keep the point under the cursor (or the centre) where it is.
    var fx = cx === undefined ? 0.5 : cx;
    var fy = cy === undefined ? 0.5 : cy;
    apply(viewport, {
      x: view.x + (view.w - w) * fx,
      y: view.y + (view.h - h) * fy,
      w: w,
      h: h
    });
  }

  function reset(viewport) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    var base = natural(svg);
    apply(viewport, { x: base.x, y: base.y, w: base.w, h: base.h });
    delete views[executionId(viewport)];
  }

  function viewportFor(el) {
    var panel = el.closest(".graph-panel");
    return panel ? panel.querySelector("[data-graph]") : null;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-graph-zoom]");
    if (!button) { return; }
    var viewport = viewportFor(button);
    if (!viewport) { return; }
    var how = button.getAttribute("data-graph-zoom");
    if (how === "in") { zoom(viewport, 1.3); }
    else if (how === "out") { zoom(viewport, 1 / 1.3); }
    else { reset(viewport); }
  });

  document.addEventListener("wheel", function (event) {
    var viewport = event.target.closest && event.target.closest("[data-graph]");
    if (!viewport || !(event.ctrlKey || event.metaKey)) { return; }  // plain wheel scrolls the page
    event.preventDefault();
    var rect = viewport.getBoundingClientRect();
    zoom(
      viewport,
      event.deltaY < 0 ? 1.15 : 1 / 1.15,
      (event.clientX - rect.left) / rect.width,
      (event.clientY - rect.top) / rect.height
    );
  }, { passive: false });

  document.addEventListener("keydown", function (event) {
    var viewport = event.target.closest && event.target.closest("[data-graph]");
    if (!viewport || event.target !== viewport) { return; }
    var svg = svgOf(viewport);
    if (!svg) { return; }
    var view = current(svg);
    var step = view.w * 0.1;
    var moves = {
      ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]
    };
    if (event.key === "+" || event.key === "=") { zoom(viewport, 1.3); }
    else if (event.key === "-") { zoom(viewport, 1 / 1.3); }
    else if (event.key === "0") { reset(viewport); }
    else if (moves[event.key]) {
      apply(viewport, { x: view.x + moves[event.key][0], y: view.y + moves[event.key][1], w: view.w, h: view.h });
    } else { return; }
    event.preventDefault();
  });

  // Drag to pan. A drag must not also open the step under the pointer when it ends.
  var drag = null;
  document.addEventListener("pointerdown", function (event) {
    var viewport = event.target.closest && event.target.closest("[data-graph]");
    if (!viewport || event.button !== 0) { return; }
    var svg = svgOf(viewport);
    if (!svg) { return; }
    drag = {
      viewport: viewport, svg: svg, x: event.clientX, y: event.clientY,
      start: current(svg), moved: false, id: event.pointerId
    };
  });
  document.addEventListener("pointermove", function (event) {
    if (!drag || event.pointerId !== drag.id) { return; }
    var dx = event.clientX - drag.x;
    var dy = event.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < DRAG_THRESHOLD) { return; }
    if (!drag.moved) {
      drag.moved = true;
      drag.viewport.classList.add("dragging");
      drag.viewport.setPointerCapture(event.pointerId);
    }
    var rect = drag.viewport.getBoundingClientRect();
    var scale = drag.start.w / rect.width;
    apply(drag.viewport, {
      x: drag.start.x - dx * scale, y: drag.start.y - dy * scale, w: drag.start.w, h: drag.start.h
    });
  });
  function endDrag(event) {
    if (!drag || event.pointerId !== drag.id) { return; }
    var moved = drag.moved;
    drag.viewport.classList.remove("dragging");
    drag = null;
    if (moved) {
      var swallow = function (click) {
        click.stopPropagation();
        click.preventDefault();
        document.removeEventListener("click", swallow, true);
      };
      document.addEventListener("click", swallow, true);
      window.setTimeout(function () { document.removeEventListener("click", swallow, true); }, 0);
    }
  }
  document.addEventListener("pointerup", endDrag);
  document.addEventListener("pointercancel", endDrag);

  // Which step is open: from the URL (?step=...), marked in the graph and the steps table.
  function selectedStep() {
    return new URLSearchParams(window.location.search).get("step");
  }

  function markSelected() {
    var node = selectedStep();
    document.querySelectorAll(".graph-svg .node.selected, .steps-table tr.selected").forEach(function (el) {
      el.classList.remove("selected");
    });
    if (!node) { return; }
    document.querySelectorAll(".graph-svg .node[data-node-id], .steps-table tr[data-step]").forEach(function (el) {
      var id = el.getAttribute("data-node-id") || el.getAttribute("data-step");
      if (id === node) { el.classList.add("selected"); }
    });
  }

  function restoreViews(root) {
    (root.querySelectorAll ? root.querySelectorAll("[data-graph]") : []).forEach(function (viewport) {
      var saved = views[executionId(viewport)];
      var svg = svgOf(viewport);
      if (svg) { natural(svg); }
      if (saved && svg) { svg.setAttribute("viewBox", [saved.x, saved.y, saved.w, saved.h].join(" ")); }
    });
  }

  document.addEventListener("htmx:load", function (event) {
    restoreViews(event.detail.elt);
    markSelected();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "step-panel") {
      var rect = target.getBoundingClientRect();
      if (rect.top < 0 || rect.top > window.innerHeight * 0.6) {
        target.scrollIntoView({ behavior: "smooth", block: "start" });
      }
    }
  });
  document.addEventListener("htmx:pushedIntoHistory", markSelected);
  window.addEventListener("popstate", function () { window.setTimeout(markSelected, 0); });

  document.addEventListener("DOMContentLoaded", function () {
    restoreViews(document);
    markSelected();
  });
})();
