"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let state = null;
  const beats = {};
  const keys = {}; // task -> this page's lease key (only the taker gets one)
  const panels = {}; // task -> live view panel (kept across renders: focus stays)
  let sending = Promise.resolve();
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
    return r.ok ? data : null;
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
  const asked = {}; // question id -> its element (kept across renders: a half-typed answer stays)
  function drawQuestions(s) {
    const box = $("questions");
    const ids = s.questions.map((q) => q.id);
    for (const id of Object.keys(asked)) {
      if (!ids.includes(id)) { asked[id].remove(); delete asked[id]; }
    }
    box.querySelectorAll("p.none").forEach((p) => p.remove());
    if (!s.questions.length) { box.append(el("p", { class: "none" }, "nothing")); return; }
    for (const q of s.questions) {
      const left = `[${q.task}] ${q.kind === "help" ? "asks" : "needs approval"} (${q.seconds_left}s left)`;
      if (asked[q.id]) { asked[q.id].firstChild.textContent = left; continue; }
      const d = el("div", { class: "q", "data-question": q.id, "data-kind": q.kind });
      d.append(el("div", {}, left));
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
      asked[q.id] = d;
      box.append(d);
    }
  }
  function lease(id, op) {
    return post("/api/lease/" + encodeURIComponent(id), { op: op, note: op === "release" ? "handed back from the console" : "" }).then((data) => {
      if (data && op === "take") {
        keys[id] = data.key;
        if (state) drawLive(state); // the view turns writable even if no new state comes
        if (!beats[id]) beats[id] = setInterval(() => post("/api/lease/" + encodeURIComponent(id), { op: "heartbeat" }).then((ok) => { if (!ok) drop(id); }), 5000);
      }
      if (op === "release") drop(id);
    });
  }
  function drop(id) {
    if (beats[id]) { clearInterval(beats[id]); delete beats[id]; }
    delete keys[id];
  }
  // --- the live view: the held task's sandbox, writable for the lease holder -----------
  function mine(id) {
    const held = state && state.leases[id];
    return !!(keys[id] && held && held.holder === "console:" + who());
  }
  function send(id, event) {
    if (!mine(id)) return;
    sending = sending.then(() => post("/api/input/" + encodeURIComponent(id), { key: keys[id], event: event }));
  }
  const NAMES = { Enter: "enter", Tab: "tab", Escape: "esc", Backspace: "backspace", Delete: "delete", Home: "home", End: "end",
    PageUp: "pageup", PageDown: "pagedown", ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right", Insert: "insert", " ": "space" };
  function keyName(e) {
    if (NAMES[e.key]) return NAMES[e.key];
    if (/^F[0-9]{1,2}$/.test(e.key)) return e.key.toLowerCase();
    return e.key.length === 1 ? e.key.toLowerCase() : null;
  }
  function point(img, e, size) {
    const r = img.getBoundingClientRect();
    const x = Math.floor((e.clientX - r.left) * size[0] / r.width), y = Math.floor((e.clientY - r.top) * size[1] / r.height);
    return { x: Math.max(0, Math.min(size[0] - 1, x)), y: Math.max(0, Math.min(size[1] - 1, y)) };
  }
  function wire(p, id) {
    const img = p.img;
    let pending = null, typed = "", flushAt = null;
    const size = () => (state.live[id] && state.live[id].size) || [img.naturalWidth || 1, img.naturalHeight || 1];
    // Inputs reach the sandbox in the order the person made them: a click waiting to see
    // whether it becomes a double-click, and typed characters, go before anything after them.
    const flush = () => {
      if (pending) { clearTimeout(pending.timer); send(id, pending.event); pending = null; }
      if (flushAt) { clearTimeout(flushAt); flushAt = null; }
      if (typed) { send(id, { kind: "type", text: typed }); typed = ""; }
    };
    img.addEventListener("click", (e) => {
      img.focus();
      if (e.detail > 1 || !mine(id)) return; // the dblclick that follows says it
      flush();
      const event = Object.assign({ kind: "click" }, point(img, e, size()));
      pending = { event: event, timer: setTimeout(flush, 300) };
    });
    img.addEventListener("dblclick", (e) => {
      if (pending) { clearTimeout(pending.timer); pending = null; }
      flush(); send(id, Object.assign({ kind: "double_click" }, point(img, e, size())));
    });
    img.addEventListener("contextmenu", (e) => {
      e.preventDefault(); flush(); send(id, Object.assign({ kind: "right_click" }, point(img, e, size())));
    });
    img.addEventListener("wheel", (e) => {
      if (!mine(id)) return;
      e.preventDefault();
      const notches = (d) => (d === 0 ? 0 : Math.sign(d) * Math.min(10, Math.max(1, Math.round(Math.abs(d) / 100))));
      flush(); send(id, Object.assign({ kind: "scroll", dx: notches(e.deltaX), dy: notches(e.deltaY) }, point(img, e, size())));
    }, { passive: false });
    img.addEventListener("keydown", (e) => {
      if (!mine(id) || ["Shift", "Control", "Alt", "Meta", "AltGraph"].includes(e.key)) return;
      e.preventDefault();
      const mods = (e.ctrlKey ? "ctrl+" : "") + (e.altKey ? "alt+" : "") + (e.metaKey ? "super+" : "");
      if (!mods && e.key.length === 1) { // text: sent in runs, not one request a key
        typed += e.key; if (flushAt) clearTimeout(flushAt); flushAt = setTimeout(flush, 250); return;
      }
      const name = keyName(e);
      if (!name) return;
      flush(); send(id, { kind: "key", keys: mods + (e.shiftKey && (mods || name.length > 1) ? "shift+" : "") + name });
    });
    p.typeBtn.onclick = () => { flush(); if (p.text.value) { send(id, { kind: "type", text: p.text.value }); p.text.value = ""; } };
    p.pressBtn.onclick = () => { flush(); if (p.keys.value) send(id, { kind: "key", keys: p.keys.value }); };
    for (const b of p.quick) b.onclick = () => { flush(); send(id, { kind: "key", keys: b.getAttribute("data-keys") }); };
  }
  function panel(id) {
    if (panels[id]) return panels[id];
    const root = el("div", { class: "live-view", "data-task": id });
    const head = el("div", { class: "live-head" });
    const img = el("img", { class: "screen", tabindex: "0", alt: "live view of " + id, draggable: "false" });
    const ctl = el("div", { class: "live-controls" });
    const text = el("input", { class: "live-text", size: 30, placeholder: "text to type", "aria-label": "text to type" });
    const typeBtn = el("button", { class: "live-type" }, "Type");
    const keysIn = el("input", { class: "live-keys", size: 14, placeholder: "keys, e.g. ctrl+a", "aria-label": "keys to press" });
    const pressBtn = el("button", { class: "live-press" }, "Press");
    const quick = [["enter", "Enter"], ["tab", "Tab"], ["esc", "Esc"], ["backspace", "Backspace"], ["ctrl+a", "Ctrl+A"]]
      .map(([k, label]) => el("button", { class: "live-key", "data-keys": k }, label));
    ctl.append(text, typeBtn, keysIn, pressBtn, ...quick);
    const status = el("div", { class: "live-status" });
    root.append(head, img, status, ctl);
    const p = { root, head, img, ctl, text, typeBtn, keys: keysIn, pressBtn, quick, status, frame: null };
    wire(p, id);
    panels[id] = p;
    return p;
  }
  function showFrame(id, live) {
    const p = panels[id];
    if (!p || !live || live.frame == null || live.frame === p.frame) return;
    p.frame = live.frame;
    p.img.src = "/api/live/" + encodeURIComponent(id) + "?n=" + live.frame;
  }
  function drawLive(s) {
    const box = $("live");
    const held = s.tasks.filter((t) => t.status === "running" && s.leases[t.id]).map((t) => t.id);
    for (const id of Object.keys(panels)) {
      if (!held.includes(id)) { panels[id].root.remove(); delete panels[id]; }
    }
    for (const id of held) {
      const p = panel(id);
      if (!p.root.parentNode) box.append(p.root);
      const live = s.live[id] || {};
      const own = mine(id);
      p.root.setAttribute("data-mine", own ? "1" : "0");
      p.root.setAttribute("data-parked", live.parked ? "1" : "0");
      p.root.setAttribute("data-done", live.done || 0);
      p.head.textContent = id + " — control held by " + s.leases[id].holder + (own ? " (you)" : " (read-only)");
      p.ctl.hidden = !own;
      p.status.textContent = (live.parked ? "agent paused: " + (own ? "click the screen, then type and press keys on it" : "a person is acting") : "waiting for the agent to pause (it finishes its current step)")
        + (live.sent ? ` · inputs ${live.done}/${live.sent} done` : "") + (live.error ? " · " + live.error : "");
      if (live.frame == null) {
        // Until the agent parks, the last step's frame (the live view starts when it does).
        const t = s.tasks.find((x) => x.id === id);
        if (t && t.frame !== null && p.frame !== "step" + t.frame) {
          p.frame = "step" + t.frame;
          p.img.src = "/api/frame/" + encodeURIComponent(id) + "?n=" + t.frame;
        }
      }
      showFrame(id, live);
    }
    $("live-box").hidden = held.length === 0;
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
    drawDag(s); drawQuestions(s); drawLive(s); drawRunning(s); drawAudit(s);
    document.body.setAttribute("data-version", s.version);
  }
  const es = new EventSource("/api/events");
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "live"; };
  es.onerror = () => { $("conn").textContent = "disconnected"; $("conn").className = ""; };
  es.onmessage = (e) => render(JSON.parse(e.data));
  es.addEventListener("live", (e) => {
    const live = JSON.parse(e.data);
    if (!state) return;
    state.live = live;
    drawLive(state); // frames, and whether the agent is parked, without redrawing the rest
  });
})();
