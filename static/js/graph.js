/* qflowui step graph: pan and zoom the server-rendered SVG by changing its viewBox, keep the
 * view across htmx refreshes of a running execution, and mark the selected step.
 *
 * The box follows the graph: it opens at a readable scale (about 100 %, never below
 * READABLE) with the box as tall as the graph within bounds, centred on the selected step,
 * else the failed one, else the running one; a graph that fits is shown whole.
 * Drag (or one finger) pans; Ctrl/⌘ + wheel, a trackpad pinch (a wheel event with ctrlKey),
 * a two-finger pinch, the +/− buttons or the +/- keys zoom around the pointer; 0 or "fit"
 * shows the whole graph. A plain wheel scrolls the page, never the graph.
 * Clicking a step (graph node, table row, timeline bar) brings its panel into view; a
 * ?step= link opens with the panel in view.
 * No inline script or style anywhere (CSP): everything is delegated from the document. */
(function () {
  "use strict";

  var views = {};  // execution id -> {x, y, w, h} the user panned/zoomed to
  var MIN_SCALE = 0.05;
  var MAX_SCALE = 4;
  var READABLE = 0.8;  // never open below this scale (labels are 11 px at 1)
  var OPEN_MAX = 1.25;  // nor blow a small graph up beyond this
  var BOX_MIN = 160;
  var BOX_MAX = 680;
  var DRAG_THRESHOLD = 4;

  function svgOf(viewport) { return viewport.querySelector("svg.graph-svg"); }

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function executionId(el) {
    var live = el.closest("[data-execution-id]");
    return live ? live.getAttribute("data-execution-id") : "";
  }

  // The whole graph, in SVG units (the viewBox Graphviz wrote).
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

  // CSS px per SVG unit for a view (the viewBox always has the box's aspect).
  function scaleOf(svg, view) {
    var width = svg.getBoundingClientRect().width || 1;
    return width / view.w;
  }

  function apply(viewport, view, keep) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    if (keep !== false) { views[executionId(viewport)] = view; }
  }

  // A view of `scale` whose centre is (cx, cy) in graph units, moved so that it shows as much
  // of the graph as it can (a dimension that fits is centred on the graph).
  function viewAt(svg, scale, cx, cy) {
    var base = natural(svg);
    var rect = svg.getBoundingClientRect();
    var w = rect.width / scale;
    var h = rect.height / scale;
    function place(centre, size, start, full) {
      if (size >= full) { return start + (full - size) / 2; }
      return Math.max(start, Math.min(start + full - size, centre - size / 2));
    }
    return { x: place(cx, w, base.x, base.w), y: place(cy, h, base.y, base.h), w: w, h: h };
  }

  // The centre of a node in graph units: its box plus the translate of Graphviz's top group.
  function nodeCentre(svg, node) {
    var box = node.getBBox();
    var x = box.x + box.width / 2;
    var y = box.y + box.height / 2;
    var top = svg.querySelector("g.graph");
    var list = top && top.transform && top.transform.baseVal;
    if (list && list.numberOfItems) {
      var m = list.consolidate().matrix;
      return { x: m.a * x + m.c * y + m.e, y: m.b * x + m.d * y + m.f };
    }
    return { x: x, y: y };
  }

  function focusNode(svg) {
    var selected = selectedStep();
    var nodes = svg.querySelectorAll("g.node[data-node-id]");
    var i;
    if (selected) {
      for (i = 0; i < nodes.length; i++) {
        if (nodes[i].getAttribute("data-node-id") === selected) { return nodes[i]; }
      }
    }
    return svg.querySelector("g.node.st-failed, g.node.st-timed-out") ||
      svg.querySelector("g.node.st-running");
  }

  // Size the box to the graph and open it readable, centred on the step that matters.
  function open(viewport) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    var base = natural(svg);
    var width = viewport.clientWidth || svg.getBoundingClientRect().width;
    if (!width || !base.w || !base.h) { return; }
    var scale = Math.min(OPEN_MAX, width / base.w);
    if (scale < READABLE) { scale = READABLE; }
    var limit = Math.max(BOX_MIN, Math.min(BOX_MAX, window.innerHeight * 0.75));
    var height = Math.round(Math.max(BOX_MIN, Math.min(limit, base.h * scale)));
    svg.setAttribute("height", String(height));
    var node = focusNode(svg);
    var centre = node ? nodeCentre(svg, node) : { x: base.x + base.w / 2, y: base.y };
    if (!node && base.h * scale > height && svg.getAttribute("data-direction") !== "TB") {
      centre.y = base.y + base.h / 2;
    }
    if (!node && base.w * scale > width) { centre.x = base.x; }
    apply(viewport, viewAt(svg, scale, centre.x, centre.y), false);
  }

  function zoom(viewport, factor, fx, fy) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    var base = natural(svg);
    var view = current(svg);
    var rect = svg.getBoundingClientRect();
    var fit = Math.min(rect.width / base.w, rect.height / base.h);
    var scale = scaleOf(svg, view);
    var next = Math.max(Math.min(fit * 0.8, MIN_SCALE * 10), Math.min(MAX_SCALE, scale * factor));
    var w = rect.width / next;
    var h = rect.height / next;
    // Keep the point under the pointer (or the centre) where it is.
    var px = fx === undefined ? 0.5 : fx;
    var py = fy === undefined ? 0.5 : fy;
    apply(viewport, {
      x: view.x + (view.w - w) * px,
      y: view.y + (view.h - h) * py,
      w: w,
      h: h
    });
  }

  // "fit": the whole graph in the box.
  function reset(viewport) {
    var svg = svgOf(viewport);
    if (!svg) { return; }
    var base = natural(svg);
    var rect = svg.getBoundingClientRect();
    var fit = Math.min(rect.width / base.w, rect.height / base.h);
    apply(viewport, viewAt(svg, fit, base.x + base.w / 2, base.y + base.h / 2), false);
    delete views[executionId(viewport)];
  }

  function viewportFor(el) {
    var panel = el.closest(".graph-panel");
    return panel ? panel.querySelector("[data-graph]") : null;
  }

  // Labels are laid out by Graphviz with DejaVu Sans; should the browser draw them wider
  // (another font), squeeze the text into its box rather than let it spill.
  function fitLabels(svg) {
    svg.querySelectorAll("g.node").forEach(function (node) {
      var shape = node.querySelector("path, polygon");
      if (!shape) { return; }
      var room = shape.getBBox().width - 8;
      node.querySelectorAll("text").forEach(function (text) {
        if (text.getComputedTextLength() > room && room > 0) {
          text.setAttribute("textLength", String(room));
          text.setAttribute("lengthAdjust", "spacingAndGlyphs");
        }
      });
    });
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

  // Ctrl/⌘ + wheel and trackpad pinch (Chrome, Firefox and Safari send it as a wheel event
  // with ctrlKey) zoom around the pointer; a plain wheel scrolls the page.
  document.addEventListener("wheel", function (event) {
    var viewport = event.target.closest && event.target.closest("[data-graph]");
    if (!viewport || !(event.ctrlKey || event.metaKey)) { return; }
    event.preventDefault();
    var delta = event.deltaY * (event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1);
    delta = Math.max(-200, Math.min(200, delta));
    var rect = svgOf(viewport) ? svgOf(viewport).getBoundingClientRect() : viewport.getBoundingClientRect();
    zoom(
      viewport,
      Math.exp(-delta * 0.0025),
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
    var step = Math.min(view.w, view.h) * 0.1;
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

  // Drag to pan (mouse, pen, one finger); two fingers pinch to zoom and pan. A drag must not
  // also open the step under the pointer when it ends.
  var drag = null;
  var pointers = {};  // pointer id -> {x, y}, while down on a graph
  var pinch = null;

  function pointerList() {
    return Object.keys(pointers).map(function (id) { return pointers[id]; });
  }

  function pinchState() {
    var p = pointerList();
    return {
      d: Math.max(1, Math.hypot(p[0].x - p[1].x, p[0].y - p[1].y)),
      x: (p[0].x + p[1].x) / 2,
      y: (p[0].y + p[1].y) / 2
    };
  }

  document.addEventListener("pointerdown", function (event) {
    var viewport = event.target.closest && event.target.closest("[data-graph]");
    if (!viewport || (event.pointerType === "mouse" && event.button !== 0)) { return; }
    var svg = svgOf(viewport);
    if (!svg) { return; }
    pointers[event.pointerId] = { x: event.clientX, y: event.clientY };
    if (pointerList().length === 2) {
      pinch = { viewport: viewport, svg: svg, last: pinchState() };
      if (drag) { drag.moved = true; }
      return;
    }
    drag = {
      viewport: viewport, svg: svg, x: event.clientX, y: event.clientY,
      start: current(svg), moved: false, id: event.pointerId
    };
  });

  document.addEventListener("pointermove", function (event) {
    if (pointers[event.pointerId]) {
      pointers[event.pointerId] = { x: event.clientX, y: event.clientY };
    }
    if (pinch && pointerList().length === 2) {
      var now = pinchState();
      var rect = pinch.svg.getBoundingClientRect();
      var view = current(pinch.svg);
      var scale = rect.width / view.w;
      // Pan by the midpoint's movement, then zoom around the midpoint.
      apply(pinch.viewport, {
        x: view.x - (now.x - pinch.last.x) / scale,
        y: view.y - (now.y - pinch.last.y) / scale,
        w: view.w, h: view.h
      });
      zoom(pinch.viewport, now.d / pinch.last.d,
        (now.x - rect.left) / rect.width, (now.y - rect.top) / rect.height);
      pinch.last = now;
      return;
    }
    if (!drag || event.pointerId !== drag.id) { return; }
    var dx = event.clientX - drag.x;
    var dy = event.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < DRAG_THRESHOLD) { return; }
    if (!drag.moved) {
      drag.moved = true;
      drag.viewport.classList.add("dragging");
      try { drag.viewport.setPointerCapture(event.pointerId); } catch (e) { /* gone */ }
    }
    var box = drag.svg.getBoundingClientRect();
    var unit = drag.start.w / box.width;
    apply(drag.viewport, {
      x: drag.start.x - dx * unit, y: drag.start.y - dy * unit, w: drag.start.w, h: drag.start.h
    });
  });

  function endDrag(event) {
    delete pointers[event.pointerId];
    if (pinch && pointerList().length < 2) { pinch = null; }
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

  function prepare(root) {
    (root.querySelectorAll ? root.querySelectorAll("[data-graph]") : []).forEach(function (viewport) {
      var svg = svgOf(viewport);
      if (!svg) { return; }
      natural(svg);
      fitLabels(svg);
      var saved = views[executionId(viewport)];
      open(viewport);  // sizes the box (and the view, unless the analyst chose one)
      if (saved) { apply(viewport, saved); }
    });
  }

  // The step panel in view: after it is swapped in, and on load of a ?step= link.
  function showPanel(smooth) {
    var panel = document.getElementById("step-panel");
    if (!panel || !panel.querySelector(".panel")) { return; }
    var rect = panel.getBoundingClientRect();
    if (rect.top >= 0 && rect.top <= window.innerHeight * 0.35) { return; }
    panel.scrollIntoView({ behavior: smooth && !reducedMotion() ? "smooth" : "auto", block: "start" });
  }

  // A click anywhere on a steps-table row opens its step, as its link does.
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(".steps-table tr[data-step]");
    if (!row || event.target.closest("a, button, input, select, textarea, label")) { return; }
    if (window.getSelection && String(window.getSelection())) { return; }  // selecting text
    var link = row.querySelector("a[href]");
    if (link) { link.click(); }
  });

  document.addEventListener("htmx:load", function (event) {
    prepare(event.detail.elt);
    markSelected();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "step-panel") { showPanel(true); }
  });
  document.addEventListener("htmx:pushedIntoHistory", markSelected);
  window.addEventListener("popstate", function () { window.setTimeout(markSelected, 0); });

  var resizing = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizing);
    resizing = window.setTimeout(function () {
      document.querySelectorAll("[data-graph]").forEach(function (viewport) {
        if (!views[executionId(viewport)]) { open(viewport); }
      });
    }, 150);
  });

  function start() {
    prepare(document);
    markSelected();
    showPanel(false);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
