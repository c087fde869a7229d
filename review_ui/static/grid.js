// redweb review: grid of thumbnails, bulk accept/reject. Keyboard: arrows, X/Space, *, Shift+A, Shift+R, Enter,
// U (undo the latest action: a bulk action as a whole), M (unreliable overlay).
// A selected item is leased to this reviewer while it stays selected (the page renews the leases);
// unselecting it, or leaving the page, gives it back.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);
  const tiles = Array.from(document.querySelectorAll(".tile"));
  const flash = $("flash");
  const confirmPanel = $("confirm-panel");
  let pending = null; // a bulk action waiting for Enter
  let busy = false;

  function say(text, ok) {
    flash.textContent = text;
    flash.classList.toggle("ok", !!ok);
    flash.classList.remove("hidden");
    clearTimeout(say.timer);
    say.timer = setTimeout(() => flash.classList.add("hidden"), 5000);
  }
  try {
    const kept = JSON.parse(sessionStorage.getItem("redweb.flash") || "null");
    sessionStorage.removeItem("redweb.flash");
    if (kept && kept.text) say(kept.text, kept.ok);
  } catch (e) { /* private mode */ }
  function sayNext(text, ok) {
    try { sessionStorage.setItem("redweb.flash", JSON.stringify({ text: text, ok: !!ok })); } catch (e) { /* private */ }
  }

  async function post(url, body, keepalive) {
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin", keepalive: !!keepalive,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body || {}),
    });
    let out = {};
    try { out = await res.json(); } catch (e) { /* empty */ }
    if (!res.ok) {
      const err = new Error(typeof out.error === "string" ? out.error : res.statusText);
      err.status = res.status;
      throw err;
    }
    return out;
  }

  function box(t) { return t.querySelector(".pick"); }
  function picked() { return tiles.filter((t) => { const c = box(t); return c && c.checked; }); }
  function refresh() {
    tiles.forEach((t) => { const c = box(t); t.classList.toggle("picked", !!(c && c.checked)); });
    $("selected-count").textContent = String(picked().length);
  }

  // ---- selections are leases ----
  async function hold(ids) {
    if (!ids.length) return;
    try {
      const out = await post("/api/hold", { item_ids: ids });
      const refused = Object.entries(out.refused || {});
      refused.forEach(([id]) => { const t = tiles.find((x) => x.dataset.id === id); if (t) box(t).checked = false; });
      if (refused.length) say(refused.length + " not selected: held by " + refused.map(([, who]) => who).join(", "));
    } catch (e) {
      ids.forEach((id) => { const t = tiles.find((x) => x.dataset.id === id); if (t) box(t).checked = false; });
      say(e.message);
    }
    refresh();
  }
  function release(ids, keepalive) {
    if (!ids.length) return Promise.resolve();
    return post("/api/release", { item_ids: ids }, keepalive).catch(() => { /* runs out by itself */ });
  }
  function setPicked(list, on) {
    const changed = list.filter((t) => { const c = box(t); return c && !c.disabled && c.checked !== on; });
    changed.forEach((t) => { box(t).checked = on; });
    refresh();
    const ids = changed.map((t) => t.dataset.id);
    if (on) hold(ids); else release(ids);
  }
  function toggle(tile) { const c = box(tile); if (c && !c.disabled) setPicked([tile], !c.checked); }
  function selectAll(on) { setPicked(tiles, on); }
  setInterval(() => { const ids = picked().map((t) => t.dataset.id); if (ids.length) hold(ids); }, data.heartbeat_ms);
  let leaving = false;
  window.addEventListener("pagehide", () => { if (!leaving) release(picked().map((t) => t.dataset.id), true); });

  // ---- bulk decisions: one undoable unit; more than a handful asks first ----
  function closeConfirm() {
    pending = null;
    confirmPanel.classList.add("hidden");
    confirmPanel.setAttribute("aria-hidden", "true");
  }
  function bulk(decision) {
    const ids = picked().map((t) => t.dataset.id);
    if (!ids.length) { say("select items first (X or click)"); return; }
    const body = { item_ids: ids, decision: decision };
    if (decision === "rejected") { body.reason = $("bulk-reason").value; body.comment = $("bulk-comment").value || null; }
    if (ids.length > data.confirm_over) {
      pending = body;
      $("confirm-text").textContent = (decision === "accepted" ? "Accept " : "Reject ") + ids.length + " items" +
        (decision === "rejected" ? " as “" + body.reason.replace(/_/g, " ") + "”" : "") + "? One U undoes all of them.";
      confirmPanel.classList.remove("hidden");
      confirmPanel.setAttribute("aria-hidden", "false");
      say("Enter confirms, Esc cancels");
      return;
    }
    send(body);
  }
  async function send(body) {
    closeConfirm();
    if (busy) return;
    busy = true;
    try {
      const out = await post("/api/bulk", body);
      const failed = Object.keys(out.failed || {});
      const text = out.done.length + " " + body.decision + (failed.length ? ", " + failed.length + " not changed: " +
        Object.values(out.failed)[0] : "") + (out.done.length ? " (U undoes this as one)" : "");
      say(text, !failed.length);
      sayNext(text, !failed.length);
      leaving = true;
      setTimeout(() => window.location.reload(), failed.length ? 1500 : 300);
    } catch (e) { say(e.message); busy = false; }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const out = await post("/api/undo", {});
      say(out.text, true);
      sayNext(out.text, true);
      leaving = true;
      window.location.reload();
    } catch (e) { say(e.message); busy = false; }
  }

  function showMask(on) {
    document.body.classList.toggle("mask-off", !on);
    try { localStorage.setItem("redweb.mask", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  try { if (localStorage.getItem("redweb.mask") === "0") showMask(false); } catch (e) { /* private mode */ }

  tiles.forEach((t) => {
    const c = box(t);
    if (c) c.addEventListener("change", () => { refresh(); if (c.checked) hold([t.dataset.id]); else release([t.dataset.id]); });
  });
  $("select-all").addEventListener("click", () => selectAll(true));
  $("select-none").addEventListener("click", () => selectAll(false));
  $("bulk-accept").addEventListener("click", () => bulk("accepted"));
  $("bulk-reject").addEventListener("click", () => bulk("rejected"));
  $("confirm-yes").addEventListener("click", () => { if (pending) send(pending); });
  $("confirm-no").addEventListener("click", () => { closeConfirm(); say("cancelled", true); });

  function columns() {
    if (tiles.length < 2) return 1;
    const top = tiles[0].offsetTop;
    const n = tiles.findIndex((t) => t.offsetTop !== top);
    return n === -1 ? tiles.length : n;
  }
  document.addEventListener("keydown", (ev) => {
    const tag = ev.target.tagName;
    if ((tag === "INPUT" && (ev.target.type !== "checkbox" || ev.key === " ")) || tag === "SELECT" || tag === "TEXTAREA") return;
    if (ev.metaKey || ev.altKey || (ev.ctrlKey && ev.key.toLowerCase() !== "z")) return;
    // a held key's auto-repeat must not toggle a tile back and forth or send a bulk decision twice
    if (ev.repeat && ["x", " ", "*", "A", "R", "Enter", "u", "U"].includes(ev.key)) { ev.preventDefault(); return; }
    if (pending) {
      if (ev.key === "Enter") send(pending);
      else if (ev.key === "Escape") { closeConfirm(); say("cancelled", true); }
      ev.preventDefault();
      return;
    }
    const i = tiles.indexOf(document.activeElement.closest ? document.activeElement.closest(".tile") : null);
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[ev.key];
    if (move !== undefined && tiles.length) {
      const j = i === -1 ? 0 : Math.max(0, Math.min(tiles.length - 1, i + move));
      tiles[j].focus();
    } else if ((ev.key === "x" || ev.key === " ") && i !== -1) {
      toggle(tiles[i]);
    } else if (ev.key === "*") {
      selectAll(picked().length === 0);
    } else if (ev.key === "A" && ev.shiftKey) {
      bulk("accepted");
    } else if (ev.key === "R" && ev.shiftKey) {
      bulk("rejected");
    } else if (ev.key === "u" || (ev.key.toLowerCase() === "z" && ev.ctrlKey)) {
      undo();
    } else if (ev.key === "m") {
      showMask(document.body.classList.contains("mask-off"));
      say("unreliable overlay " + (document.body.classList.contains("mask-off") ? "off" : "on"), true);
    } else if (ev.key === "Enter" && i !== -1) {
      leaving = true;
      window.location.assign("/item/" + tiles[i].dataset.id);
    } else {
      return;
    }
    ev.preventDefault();
  });
  refresh();
  document.body.dataset.ready = "1"; // tests and scripts wait for this
})();
