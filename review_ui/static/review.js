// redweb review: keyboard-first item page. No framework, no external assets.
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const flash = $("flash");
  const viewer = $("viewer");
  const rejectPanel = $("reject-panel");
  const overridePanel = $("override-panel");
  const comment = $("comment");
  const opacity = $("opacity");
  let busy = false;
  let pendingOverride = null; // {decision, reason, comment} waiting for Enter
  let pickedReason = null;

  function say(text, ok) {
    flash.textContent = text;
    flash.classList.toggle("ok", !!ok);
    flash.classList.remove("hidden");
    clearTimeout(say.timer);
    say.timer = setTimeout(() => flash.classList.add("hidden"), 4000);
  }

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* empty body */ }
    if (!res.ok) {
      const msg = typeof data.error === "string" ? data.error : (data.detail ? JSON.stringify(data.detail) : res.statusText);
      throw new Error(msg);
    }
    return data;
  }

  function go(url) { window.location.assign(url); }

  async function decide(decision, reason, text, override) {
    if (busy) return;
    busy = true;
    try {
      await post("/api/decide", { item_id: page.item_id, decision: decision, reason: reason || null,
                                  comment: text || null, override: !!override });
      say(decision === "accepted" ? "accepted" : "rejected: " + reason, true);
      go(page.next_url); // auto-advance
    } catch (e) {
      say(e.message);
      busy = false;
    }
  }

  function closePanels() {
    rejectPanel.classList.add("hidden");
    overridePanel.classList.add("hidden");
    rejectPanel.setAttribute("aria-hidden", "true");
    pendingOverride = null;
    pickedReason = null;
    document.querySelectorAll(".reason.picked").forEach((b) => b.classList.remove("picked"));
    if (document.activeElement === comment) comment.blur();
  }

  function askOverride(decision, reason, text) {
    pendingOverride = { decision: decision, reason: reason, comment: text };
    $("override-text").textContent = "Change " + page.state + (page.decided_by ? " (by " + page.decided_by + ")" : "") +
      " to " + decision + (reason ? " (" + reason.replace(/_/g, " ") + ")" : "") + ". This is logged as a second decision.";
    rejectPanel.classList.add("hidden");
    overridePanel.classList.remove("hidden");
  }

  function submit(decision, reason, text) {
    if (page.mode === "locked" || page.mode === "readonly") { say("read only: " + page.state); return; }
    if (page.mode === "decided") { askOverride(decision, reason, text); return; }
    decide(decision, reason, text, false);
  }

  function accept() { closePanels(); submit("accepted"); }

  function openReject() {
    if (page.mode === "locked" || page.mode === "readonly") { say("read only"); return; }
    overridePanel.classList.add("hidden");
    rejectPanel.classList.remove("hidden");
    rejectPanel.setAttribute("aria-hidden", "false");
  }

  function pickReason(code) {
    const text = comment.value.trim();
    if (code === "other" && !text) {
      pickedReason = code;
      document.querySelectorAll(".reason").forEach((b) => b.classList.toggle("picked", b.dataset.reason === code));
      comment.focus();
      say("type a comment, then Ctrl+Enter");
      return;
    }
    submit("rejected", code, text);
  }

  async function skip() {
    if (page.mode !== "review" && page.mode !== "second") { go(page.next_url); return; }
    try { await post("/api/skip", { item_id: page.item_id }); go(page.next_url); } catch (e) { say(e.message); }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const data = await post("/api/undo", {});
      say("undone", true);
      const qs = page.next_url.split("?")[1].replace(/&?current=[^&]*/, "");
      go("/item/" + encodeURIComponent(data.item_id) + (qs ? "?" + qs : ""));
    } catch (e) { say(e.message); busy = false; }
  }

  // ---- view controls ----
  function setView(mode) {
    viewer.classList.toggle("sbs", mode === "sbs");
    viewer.classList.toggle("ovl", mode === "ovl");
    $("view-sbs").classList.toggle("on", mode === "sbs");
    $("view-ovl").classList.toggle("on", mode === "ovl");
    try { localStorage.setItem("redweb.view", mode); } catch (e) { /* private mode */ }
  }
  function applyOpacity() {
    const v = Number(opacity.value) / 100;
    document.querySelectorAll(".stack .layer").forEach((el) => { el.style.opacity = String(v); });
    $("opacity-value").textContent = opacity.value + "%";
    try { localStorage.setItem("redweb.opacity", opacity.value); } catch (e) { /* private mode */ }
  }
  function applyToggles() {
    const m = $("img-mask"), s = $("img-sky");
    if (m) m.classList.toggle("hidden", !$("show-mask").checked);
    if (s) s.classList.toggle("hidden", !$("show-sky").checked);
  }
  function nudgeOpacity(delta) {
    opacity.value = String(Math.max(0, Math.min(100, Number(opacity.value) + delta)));
    applyOpacity();
  }

  $("view-sbs").addEventListener("click", () => setView("sbs"));
  $("view-ovl").addEventListener("click", () => setView("ovl"));
  opacity.addEventListener("input", applyOpacity);
  opacity.addEventListener("change", applyOpacity);
  $("show-mask").addEventListener("change", applyToggles);
  $("show-sky").addEventListener("change", applyToggles);
  $("btn-accept").addEventListener("click", accept);
  $("btn-reject").addEventListener("click", openReject);
  $("btn-skip").addEventListener("click", skip);
  $("btn-undo").addEventListener("click", undo);
  $("btn-prev").addEventListener("click", () => go(page.prev_url));
  $("btn-next").addEventListener("click", () => go(page.next_url));
  document.querySelectorAll(".reason").forEach((b) => b.addEventListener("click", () => pickReason(b.dataset.reason)));

  try {
    const v = localStorage.getItem("redweb.view");
    if (v === "ovl" || v === "sbs") setView(v);
    const o = localStorage.getItem("redweb.opacity");
    if (o !== null) opacity.value = o;
  } catch (e) { /* private mode */ }
  applyOpacity();
  applyToggles();

  document.addEventListener("keydown", (ev) => {
    const tag = ev.target.tagName;
    const inText = ev.target === comment || tag === "SELECT" || tag === "TEXTAREA" ||
      (tag === "INPUT" && ev.target.type !== "checkbox" && ev.target.type !== "range");
    const k = ev.key;
    if (k === "Escape") { closePanels(); ev.preventDefault(); return; }
    if (inText) {
      if (k === "Enter" && (ev.ctrlKey || ev.metaKey) && ev.target === comment) {
        ev.preventDefault();
        submit("rejected", pickedReason || "other", comment.value.trim());
      }
      return;
    }
    if (ev.altKey || (ev.ctrlKey && k.toLowerCase() !== "z") || ev.metaKey) return;
    if (pendingOverride && k === "Enter") {
      ev.preventDefault();
      const p = pendingOverride;
      pendingOverride = null;
      decide(p.decision, p.reason, p.comment, true);
      return;
    }
    const rejectOpen = !rejectPanel.classList.contains("hidden");
    if (rejectOpen && /^[1-9]$/.test(k)) {
      const code = page.reasons[Number(k) - 1];
      if (code) { ev.preventDefault(); pickReason(code); }
      return;
    }
    switch (k.toLowerCase()) {
      case "a": accept(); break;
      case "r": openReject(); break;
      case "s": skip(); break;
      case "u": undo(); break;
      case "z": if (ev.ctrlKey) undo(); else return; break;
      case "arrowleft": go(page.prev_url); break;
      case "arrowright": go(page.next_url); break;
      case "v": setView(viewer.classList.contains("sbs") ? "ovl" : "sbs"); break;
      case "m": $("show-mask").checked = !$("show-mask").checked; applyToggles(); break;
      case "y": $("show-sky").checked = !$("show-sky").checked; applyToggles(); break;
      case "[": nudgeOpacity(-10); break;
      case "]": nudgeOpacity(10); break;
      case "g": go(page.grid_url); break;
      default: return;
    }
    ev.preventDefault();
  });
  document.body.dataset.ready = "1"; // tests and scripts wait for this
})();
