// The agentcorp trace viewer. Reads the JSON in #trace-data; no network, no libraries.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("trace-data").textContent);
  const tl = document.getElementById("timeline");
  const img = document.getElementById("frame");
  const svg = document.getElementById("overlay");
  const info = document.getElementById("info");
  const NS = "http://www.w3.org/2000/svg";
  const RED = "#ff2d55";
  let cur = 0;

  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    parent.appendChild(e);
    return e;
  }

  function label(x, y, text) {
    const t = el("text", {
      x: x, y: y, fill: "#fff", stroke: "#000", "stroke-width": 4, "paint-order": "stroke",
      "font-size": 22, "font-family": "sans-serif",
    }, svg);
    t.textContent = text;
  }

  // Draw the step's action over the frame, in screen pixels (the viewBox is the screen).
  function draw(s) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", "0 0 " + s.size[0] + " " + s.size[1]);
    const a = s.action;
    const pointed = ["click", "double_click", "right_click", "move", "scroll"];
    if (a.x !== null && a.y !== null && pointed.includes(a.kind)) {
      el("circle", { cx: a.x, cy: a.y, r: 16, fill: "none", stroke: RED, "stroke-width": 4 }, svg);
      el("line", { x1: a.x - 26, y1: a.y, x2: a.x + 26, y2: a.y, stroke: RED, "stroke-width": 2 }, svg);
      el("line", { x1: a.x, y1: a.y - 26, x2: a.x, y2: a.y + 26, stroke: RED, "stroke-width": 2 }, svg);
      if (a.kind === "double_click") {
        el("circle", { cx: a.x, cy: a.y, r: 24, fill: "none", stroke: RED, "stroke-width": 3 }, svg);
      }
      if (a.kind === "scroll") {
        el("line", {
          x1: a.x, y1: a.y, x2: a.x + a.dx * 30, y2: a.y + a.dy * 30, stroke: RED, "stroke-width": 5,
        }, svg);
      }
      label(a.x + 20, a.y - 20, a.kind + (a.target ? ' "' + a.target + '"' : ""));
    }
    if (a.kind === "drag" && a.path.length) {
      el("polyline", {
        points: a.path.map(function (p) { return p.join(","); }).join(" "),
        fill: "none", stroke: RED, "stroke-width": 5,
      }, svg);
      const end = a.path[a.path.length - 1];
      el("circle", { cx: end[0], cy: end[1], r: 10, fill: RED }, svg);
      label(a.path[0][0] + 12, a.path[0][1] - 12, "drag");
    }
    if (a.kind === "zoom" && a.region) {
      el("rect", {
        x: a.region[0], y: a.region[1], width: a.region[2], height: a.region[3],
        fill: "none", stroke: RED, "stroke-width": 4, "stroke-dasharray": "10 6",
      }, svg);
      label(a.region[0] + 6, a.region[1] - 8, "zoom");
    }
    if (a.kind === "type" || a.kind === "key") {
      const txt = a.kind === "type" ? "type: " + (a.text || "") : "key: " + (a.keys || "");
      el("rect", {
        x: 10, y: s.size[1] - 52, width: Math.min(s.size[0] - 20, 24 + txt.length * 12),
        height: 40, fill: "rgba(0,0,0,0.7)", rx: 6,
      }, svg);
      label(22, s.size[1] - 24, txt);
    }
  }

  function row(dl, k, v) {
    if (v === null || v === undefined || v === "") return;
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function pre(text) {
    const p = document.createElement("pre");
    p.textContent = text;
    info.appendChild(p);
  }

  function show(i) {
    cur = Math.max(0, Math.min(D.steps.length - 1, i));
    const s = D.steps[cur];
    if (s.frame) img.src = D.frames[s.frame]; else img.removeAttribute("src");
    img.setAttribute("data-frame", s.frame || "");
    draw(s);
    tl.querySelectorAll("button").forEach(function (b, j) { b.classList.toggle("cur", j === cur); });
    info.textContent = "";
    const h = document.createElement("h2");
    h.textContent = "Step " + (cur + 1) + " of " + D.steps.length + ": " + s.action.kind +
      " (" + s.source + ")";
    info.appendChild(h);
    const dl = document.createElement("dl");
    info.appendChild(dl);
    row(dl, "intent", s.action.intent);
    row(dl, "tool call", s.tool);
    row(dl, "model", s.model);
    row(dl, "model latency", s.latency_ms ? s.latency_ms + " ms" : "");
    row(dl, "tokens", (s.prompt_tokens || s.completion_tokens)
      ? s.prompt_tokens + " in / " + s.completion_tokens + " out" : "");
    row(dl, "cost", s.cost_usd ? "$" + s.cost_usd.toFixed(5) : "");
    row(dl, "policy", s.policy);
    row(dl, "result", s.ok === null ? "" : (s.ok ? "ok" : "failed: " + s.error));
    row(dl, "action time", s.duration_ms ? s.duration_ms + " ms" : "");
    row(dl, "settle time", s.settle_ms ? s.settle_ms + " ms" : "");
    row(dl, "phases", Object.keys(s.phases || {}).map(function (k) {
      return k + " " + s.phases[k] + " ms";
    }).join(" · "));
    row(dl, "summary", s.action.summary);
    if (s.reasoning) pre(s.reasoning);
    s.notes.forEach(pre);
    document.getElementById("pos").textContent = (cur + 1) + " / " + D.steps.length;
  }

  D.steps.forEach(function (s, i) {
    const b = document.createElement("button");
    b.textContent = String(i + 1);
    b.title = s.action.kind;
    if (s.ok === false) b.classList.add("bad");
    b.addEventListener("click", function () { show(i); });
    tl.appendChild(b);
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "ArrowRight") { show(cur + 1); e.preventDefault(); }
    else if (e.key === "ArrowLeft") { show(cur - 1); e.preventDefault(); }
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(D.steps.length - 1);
  });

  const ck = document.getElementById("checks");
  D.checks.forEach(function (c) {
    const li = document.createElement("li");
    li.className = c.status;
    li.textContent = c.status + ": " + c.name + (c.detail ? " (" + c.detail + ")" : "");
    ck.appendChild(li);
  });

  if (D.steps.length) show(0);
})();
