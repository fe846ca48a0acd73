"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let state = null;
  const beats = {};
  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function who() { return $("who").value || "operator"; }
  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Agentcorp-Console": "1" },
      body: JSON.stringify(Object.assign({ who: who() }, body || {})),
    });
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (!r.ok) flash(data.error || ("HTTP " + r.status));
    return r.ok;
  }
  function flash(msg) {
    const li = el("li", { class: "err" }, "refused: " + msg);
    $("audit").prepend(li);
  }
  function layout(tasks) {
    const byId = {}; tasks.forEach((t) => { byId[t.id] = t; });
    const depth = {};
    function level(id, seen) {
      if (depth[id] !== undefined) return depth[id];
      let d = 0;
      for (const p of (byId[id] ? byId[id].depends_on : [])) {
        if (byId[p] && !seen.has(p)) d = Math.max(d, level(p, new Set([...seen, id])) + 1);
      }
      depth[id] = d; return d;
    }
    const rows = {}, pos = {};
    tasks.forEach((t) => {
      const c = level(t.id, new Set()); const r = rows[c] || 0; rows[c] = r + 1;
      pos[t.id] = { x: 10 + c * 230, y: 10 + r * 58 };
    });
    return pos;
  }
  function drawDag(s) {
    const svg = $("dag"); svg.replaceChildren();
    const pos = layout(s.tasks);
    let w = 10, h = 10;
    s.tasks.forEach((t) => {
      for (const d of t.depends_on) {
        if (!pos[d]) continue;
        const a = pos[d], b = pos[t.id];
        svg.append(el("svg:path", { class: "edge", d: `M${a.x + 170},${a.y + 20} C${a.x + 200},${a.y + 20} ${b.x - 30},${b.y + 20} ${b.x},${b.y + 20}` }));
      }
    });
    s.tasks.forEach((t) => {
      const p = pos[t.id]; w = Math.max(w, p.x + 180); h = Math.max(h, p.y + 50);
      const held = s.leases[t.id] ? " held" : "";
      const g = el("svg:g", { class: "node " + t.status + held, "data-task": t.id, "data-status": t.status });
      g.append(el("svg:title", {}, t.id + ": " + t.status));
      g.append(el("svg:rect", { x: p.x, y: p.y, width: 170, height: 40, rx: 6 }));
      g.append(el("svg:text", { x: p.x + 8, y: p.y + 17 }, t.id.length > 22 ? t.id.slice(0, 21) + "…" : t.id));
      g.append(el("svg:text", { x: p.x + 8, y: p.y + 32 }, t.status + (held ? " · held" : "")));
      svg.append(g);
    });
    svg.setAttribute("width", w); svg.setAttribute("height", h);
  }
  function drawQuestions(s) {
    const box = $("questions"); box.replaceChildren();
    if (!s.questions.length) { box.append(el("p", { class: "none" }, "nothing")); return; }
    for (const q of s.questions) {
      const d = el("div", { class: "q", "data-question": q.id, "data-kind": q.kind });
      d.append(el("div", {}, `[${q.task}] ${q.kind === "help" ? "asks" : "needs approval"} (${q.seconds_left}s left)`));
      d.append(el("div", { class: "text" }, q.text));
      if (q.kind === "approval") {
        const ok = el("button", { class: "approve" }, "Approve"); ok.onclick = () => post("/api/questions/" + q.id, { decision: "approve" });
        const no = el("button", { class: "deny" }, "Deny"); no.onclick = () => post("/api/questions/" + q.id, { decision: "deny" });
        d.append(ok, no);
      } else {
        const input = el("input", { class: "answer", size: 50 });
        const send = el("button", { class: "send" }, "Answer");
        send.onclick = () => post("/api/questions/" + q.id, { answer: input.value });
        d.append(input, send);
      }
      box.append(d);
    }
  }
  function lease(id, op) {
    return post("/api/lease/" + encodeURIComponent(id), { op: op, note: op === "release" ? "handed back from the console" : "" }).then((ok) => {
      if (ok && op === "take") beats[id] = setInterval(() => post("/api/lease/" + encodeURIComponent(id), { op: "heartbeat" }), 5000);
      if (op === "release" && beats[id]) { clearInterval(beats[id]); delete beats[id]; }
    });
  }
  function drawRunning(s) {
    const box = $("running"); box.replaceChildren();
    const running = s.tasks.filter((t) => t.status === "running");
    if (!running.length) { box.append(el("p", { class: "none" }, "nothing running")); return; }
    for (const t of running) {
      const held = s.leases[t.id];
      const c = el("div", { class: "card" + (held ? " held" : ""), "data-task": t.id });
      if (t.frame !== null) c.append(el("img", { alt: "last frame of " + t.id, src: "/api/frame/" + encodeURIComponent(t.id) + "?n=" + t.frame }));
      const m = el("div", { class: "meta" });
      m.append(el("div", {}, t.id + " — " + t.mode), el("div", { class: "step" }, "step " + t.step + ": " + t.action),
        el("div", { class: "intent" }, t.intent), el("div", {}, t.tokens + " tokens, $" + t.cost_usd.toFixed(4)));
      if (held) {
        m.append(el("div", { class: "holder" }, "control held by " + held.holder));
        if (held.holder === "console:" + who()) {
          const b = el("button", { class: "handback" }, "Hand back"); b.onclick = () => lease(t.id, "release"); m.append(b);
        }
      } else {
        const b = el("button", { class: "takeover" }, "Take over"); b.onclick = () => lease(t.id, "take"); m.append(b);
      }
      c.append(m); box.append(c);
    }
  }
  function drawAudit(s) {
    const ol = $("audit"); ol.replaceChildren();
    for (const a of s.audit.slice().reverse()) {
      const rest = Object.assign({}, a); delete rest.kind; delete rest.t;
      ol.append(el("li", { "data-kind": a.kind }, a.kind + " " + JSON.stringify(rest)));
    }
  }
  function render(s) {
    state = s;
    $("company").textContent = s.company + (s.finished ? " (finished)" : "");
    drawDag(s); drawQuestions(s); drawRunning(s); drawAudit(s);
    document.body.setAttribute("data-version", s.version);
  }
  const es = new EventSource("/api/events");
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "live"; };
  es.onerror = () => { $("conn").textContent = "disconnected"; $("conn").className = ""; };
  es.onmessage = (e) => render(JSON.parse(e.data));
})();
