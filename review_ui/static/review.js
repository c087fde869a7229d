// redweb review: keyboard-first item page (and the keys of the "nothing left" page). No framework.
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const flash = $("flash");
  const MODIFIERS = new Set(["Shift", "Control", "Alt", "Meta", "CapsLock", "Tab", "AltGraph", "NumLock", "Fn"]);
  // keys that act on the item: a held key's auto-repeat must never decide a second item
  const ACTION_KEYS = new Set(["a", "r", "s", "u", "f", "z", "enter", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  let busy = false;

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
      const err = new Error(typeof data.error === "string" ? data.error : res.statusText);
      err.status = res.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  let leaving = false; // set when this script navigates: the next page (or /next) moves the lease itself
  function go(url) { leaving = true; window.location.assign(url); }

  // a message that must outlive a navigation (undo moves to the undone item) is shown by the next page
  function sayNext(text, ok) {
    try { sessionStorage.setItem("redweb.flash", JSON.stringify({ text: text, ok: !!ok })); } catch (e) { /* private */ }
  }
  try {
    const kept = JSON.parse(sessionStorage.getItem("redweb.flash") || "null");
    sessionStorage.removeItem("redweb.flash");
    if (kept && kept.text) say(kept.text, kept.ok);
  } catch (e) { /* private mode */ }

  // the unreliable overlay (M): one switch for every picture on the page, the legend included
  function showMask(on) {
    document.body.classList.toggle("mask-off", !on);
    const box = $("show-mask");
    if (box) box.checked = on;
    try { localStorage.setItem("redweb.mask", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  try { if (localStorage.getItem("redweb.mask") === "0") showMask(false); } catch (e) { /* private mode */ }

  function keyName(ev) {
    return ev.key.length === 1 ? ev.key.toUpperCase() : ev.key;
  }

  // U takes back the decision the page names in its green line (page.undo_id), not whatever is latest
  async function undo() {
    if (busy) { say("busy: wait for the last action to finish"); return; }
    if (!page.undo_id && page.undo_blocked) { say(page.undo_blocked); return; }
    busy = true;
    const body = page.undo_id ? { decision_id: page.undo_id } : (page.item_id ? { item_id: page.item_id } : {});
    try {
      const data = await post("/api/undo", body);
      say(data.text, true);
      sayNext(data.text, true);
      if (data.bulk) { if (page.mode === "empty") window.location.reload(); else go(page.grid_url); }
      else go("/item/" + encodeURIComponent(data.item_id) + (page.qs ? "?" + page.qs : ""));
    } catch (e) { say(e.message); busy = false; }
  }

  // ---------------------------------------------------------------- the "nothing left" page
  if (page.mode === "empty") {
    document.addEventListener("keydown", (ev) => {
      const tag = ev.target.tagName;
      if (tag === "SELECT" || tag === "TEXTAREA" || tag === "INPUT") return;
      if (MODIFIERS.has(ev.key) || ev.altKey || ev.metaKey || (ev.ctrlKey && ev.key.toLowerCase() !== "z")) return;
      const k = ev.key.toLowerCase();
      if (ev.repeat && ACTION_KEYS.has(k)) return;
      if (k === "u" || (k === "z" && ev.ctrlKey)) undo();
      else if (k === "m") { showMask(document.body.classList.contains("mask-off")); say("unreliable overlay " + (document.body.classList.contains("mask-off") ? "off" : "on"), true); }
      else if (k === "arrowleft") go(page.prev_url);
      else if (k === "arrowright" || k === "n") go(page.next_url);
      else if (k === "g") go(page.grid_url);
      else if (k === "a" || k === "r" || k === "s" || k === "f") say("nothing to decide here: the queue is empty (U undoes your last decision)");
      else if (k === "escape") return;
      else say(keyName(ev) + " does nothing here: U undo, ← previous, → look again, G grid");
      ev.preventDefault();
    });
    document.body.dataset.ready = "1";
    return;
  }

  // ---------------------------------------------------------------- the item page
  const viewer = $("viewer");
  const rejectPanel = $("reject-panel");
  const overridePanel = $("override-panel");
  const comment = $("comment");
  const opacity = $("opacity");
  const nReasons = page.reasons.length;
  let pendingOverride = null; // {decision, reason, comment} waiting for Enter
  let pickedReason = null;

  function viewerImages() { return Array.from(viewer.querySelectorAll("img")); }
  function imagesLoaded() { return viewerImages().every((i) => i.complete && i.naturalWidth > 0); }
  function imagesBroken() { return viewerImages().some((i) => i.complete && i.naturalWidth === 0); }
  function readOnly() { return page.mode === "locked" || page.mode === "readonly"; }

  function canAct(what) {
    if (readOnly()) { say("read only: " + (page.lockedText || page.state)); return false; }
    if (busy) { say("busy: wait for the last action to finish"); return false; }
    if (!imagesLoaded()) {
      say(imagesBroken() ? "an image failed to load: reload the page (or skip) before you " + what
                         : "images still loading: look before you " + what);
      return false;
    }
    return true;
  }

  async function decide(decision, reason, text, override) {
    busy = true;
    try {
      await post("/api/decide", { item_id: page.item_id, decision: decision, reason: reason || null,
                                  comment: text || null, override: !!override });
      forgetDraft();
      say(decision === "accepted" ? "accepted #" + page.item_id : "rejected #" + page.item_id + ": " + reason, true);
      go(page.next_url); // auto-advance
    } catch (e) {
      say(e.message);
      busy = false;
      if (e.status === 409) heartbeat();
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
    if (page.state === decision) { closePanels(); say("already " + decision + ": nothing to change"); return; }
    pendingOverride = { decision: decision, reason: reason, comment: text };
    $("override-text").textContent = "Change " + page.state + (page.decided_by ? " (by " + page.decided_by + ")" : "") +
      " to " + decision + (reason ? " (" + reason.replace(/_/g, " ") + ")" : "") + ". This is logged as a second decision.";
    rejectPanel.classList.add("hidden");
    overridePanel.classList.remove("hidden");
    say("Enter confirms the override, Esc cancels");
  }

  function submit(decision, reason, text) {
    if (!canAct(decision === "accepted" ? "accept" : "reject")) return;
    if (page.mode === "decided") { askOverride(decision, reason, text); return; }
    decide(decision, reason, text, false);
  }

  function accept() {
    if (page.mode === "decided" && page.state === "accepted") { say("already accepted: nothing to change"); return; }
    closePanels();
    submit("accepted");
  }

  function openReject() {
    if (readOnly()) { say("read only: " + (page.lockedText || page.state)); return; }
    overridePanel.classList.add("hidden");
    rejectPanel.classList.remove("hidden");
    rejectPanel.setAttribute("aria-hidden", "false");
    say("reject: press 1–" + nReasons + " for the reason");
  }

  // a reject being written survives a reload (or a lost connection): kept per item in this tab
  const draftKey = "redweb.reject." + page.item_id;
  function saveDraft() {
    try { sessionStorage.setItem(draftKey, JSON.stringify({ reason: pickedReason, comment: comment.value })); } catch (e) { /* private */ }
  }
  function forgetDraft() { try { sessionStorage.removeItem(draftKey); } catch (e) { /* private */ } }
  function restoreDraft() {
    let d = null;
    try { d = JSON.parse(sessionStorage.getItem(draftKey) || "null"); } catch (e) { d = null; }
    if (!d || readOnly() || (!d.reason && !d.comment)) return;
    openReject();
    comment.value = d.comment || "";
    if (d.reason && page.reasons.indexOf(d.reason) !== -1) pickReason(d.reason);
    say("your unfinished reject is back: Enter rejects, Esc cancels", true);
  }

  function pickReason(code) {
    pickedReason = code;
    document.querySelectorAll(".reason").forEach((b) => b.classList.toggle("picked", b.dataset.reason === code));
    comment.focus();
    saveDraft();
    say(code.replace(/_/g, " ") + (code === "other" ? ": type a comment (needed), then Enter"
                                                     : ": add a comment or just press Enter"), true);
  }

  function submitReject() {
    if (!pickedReason) { say("pick a reason first: 1–" + nReasons); return; }
    const text = comment.value.trim();
    if (pickedReason === "other" && !text) { say("“other” needs a comment"); return; }
    submit("rejected", pickedReason, text);
  }

  async function skip() {
    if (page.mode !== "review" && page.mode !== "second") { go(page.next_url); return; }
    if (busy) { say("busy: wait for the last action to finish"); return; }
    try { await post("/api/skip", { item_id: page.item_id }); go(page.next_url); } catch (e) { say(e.message); }
  }

  async function flip() {
    if (!page.can_flip) {
      say(page.mode === "review" ? "this item has no stored views to swap" : "only an item you are reviewing can be flipped");
      return;
    }
    if (!canAct("flip")) return;
    busy = true;
    say("flipping the view order: re-deriving the maps…", true);
    try {
      await post("/api/flip", { item_id: page.item_id });
      window.location.reload();
    } catch (e) { say(e.message); busy = false; }
  }

  // ---- lease heartbeat: the page keeps its lease while it is open and visible ----
  function turnReadOnly(text) {
    page.mode = "locked";
    page.lockedText = text;
    document.body.classList.remove("mode-review", "mode-second");
    document.body.classList.add("mode-locked");
    ["btn-accept", "btn-reject", "btn-skip", "btn-flip"].forEach((id) => { const b = $(id); if (b) b.disabled = true; });
    closePanels();
    let n = $("notice");
    if (!n) {
      n = document.createElement("p");
      n.id = "notice";
      document.querySelector(".actions").insertAdjacentElement("beforebegin", n);
    }
    n.className = "notice warn";
    n.textContent = text + ". Read only: → for the next item.";
    say(text);
  }

  async function heartbeat() {
    if (page.mode !== "review" && page.mode !== "second") return;
    if (document.visibilityState !== "visible") return;
    try {
      const held = await post("/api/lease", { item_id: page.item_id });
      if (held.acquired_at) page.lease_at = held.acquired_at;
    } catch (e) {
      if (e.status === 409) {
        const who = e.data && e.data.holder;
        turnReadOnly(who ? "Taken by " + who : (e.message || "This item left your hands"));
      } else if (e.status === 401) {
        say("signed out: sign in again to keep this item");
      }
    }
  }
  if (page.mode === "review" || page.mode === "second") {
    setInterval(heartbeat, page.heartbeat_ms);
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") heartbeat(); });
    // leaving the item any other way than this script's own navigation (a link, closing the tab,
    // a reload) gives it back at once instead of holding it for the lease period
    window.addEventListener("pagehide", () => {
      if (leaving || page.mode === "locked") return;
      try {
        fetch("/api/release", { method: "POST", credentials: "same-origin", keepalive: true,
                                headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
                                body: JSON.stringify({ item_ids: [page.item_id], renewed_by: page.lease_at || null }) });
      } catch (e) { /* the lease runs out by itself */ }
    });
  }

  // ---- view controls ----
  function setView(mode) {
    viewer.classList.toggle("sbs", mode === "sbs");
    viewer.classList.toggle("ovl", mode === "ovl");
    $("view-sbs").classList.toggle("on", mode === "sbs");
    $("view-ovl").classList.toggle("on", mode === "ovl");
    try { localStorage.setItem("redweb.view", mode); } catch (e) { /* private mode */ }
    fit();
  }
  function applyOpacity() {
    const v = Number(opacity.value) / 100;
    document.querySelectorAll(".stack .layer:not(.solid)").forEach((el) => { el.style.opacity = String(v); });
    $("opacity-value").textContent = opacity.value + "%";
    try { localStorage.setItem("redweb.opacity", opacity.value); } catch (e) { /* private mode */ }
  }
  function applyToggles() {
    const s = $("img-sky");
    showMask($("show-mask").checked || $("show-mask").disabled);
    if (s) s.classList.toggle("hidden", !$("show-sky").checked);
  }
  function nudgeOpacity(delta) {
    opacity.value = String(Math.max(0, Math.min(100, Number(opacity.value) + delta)));
    applyOpacity();
  }

  // Scale the maps to the viewport: side by side in a row or in a column, whichever shows them larger.
  function fit() {
    const base = $("img-image") || $("img-depth");
    if (!base || !base.naturalWidth) return;
    const iw = base.naturalWidth, ih = base.naturalHeight, gap = 10, caption = 22;
    const W = viewer.clientWidth;
    const H = Math.max(200, window.innerHeight - viewer.getBoundingClientRect().top - 16);
    const scale = (w, h) => Math.min(w / iw, h / ih, 4);
    let w, h;
    if (viewer.classList.contains("ovl")) {
      const s = scale(W, H - caption); w = iw * s; h = ih * s;
      viewer.classList.remove("cols");
    } else {
      // side by side in a row uses the window's width; a column only when it shows the maps much larger
      const row = scale((W - gap) / 2, H - caption), col = scale(W, (H - gap) / 2 - caption);
      const stack = col > 1.3 * row;
      viewer.classList.toggle("cols", stack);
      const s = stack ? col : row; w = iw * s; h = ih * s;
    }
    document.querySelectorAll(".stack").forEach((st) => {
      st.style.width = Math.floor(w) + "px";
      st.style.height = Math.floor(h) + "px";
    });
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
  $("btn-flip").addEventListener("click", flip);
  $("btn-prev").addEventListener("click", () => go(page.prev_url));
  $("btn-next").addEventListener("click", () => go(page.next_url));
  document.querySelectorAll(".reason").forEach((b) => b.addEventListener("click", () => pickReason(b.dataset.reason)));
  window.addEventListener("resize", fit);

  try {
    const v = localStorage.getItem("redweb.view");
    if (v === "ovl" || v === "sbs") setView(v);
    const o = localStorage.getItem("redweb.opacity");
    if (o !== null) opacity.value = o;
  } catch (e) { /* private mode */ }
  applyOpacity();
  if (document.body.classList.contains("mask-off")) $("show-mask").checked = false;
  applyToggles();
  comment.addEventListener("input", saveDraft);
  restoreDraft();

  document.addEventListener("keydown", (ev) => {
    const tag = ev.target.tagName;
    const k = ev.key;
    const lower = k.toLowerCase();
    if (ev.repeat && ACTION_KEYS.has(lower)) { ev.preventDefault(); return; } // held down: one action only
    if (k === "Escape") {
      const open = !rejectPanel.classList.contains("hidden") || !overridePanel.classList.contains("hidden");
      closePanels();
      if (open) { say("cancelled", true); forgetDraft(); }
      ev.preventDefault();
      return;
    }
    if (ev.target === comment) {
      if (k === "Enter" && !ev.shiftKey) { ev.preventDefault(); submitReject(); }
      return;
    }
    if (tag === "SELECT" || tag === "TEXTAREA" || (tag === "INPUT" && ev.target.type !== "checkbox" && ev.target.type !== "range")) return;
    if (MODIFIERS.has(k) || ev.altKey || ev.metaKey || (ev.ctrlKey && lower !== "z")) return;
    if (pendingOverride) {
      if (k === "Enter") {
        ev.preventDefault();
        const p = pendingOverride;
        pendingOverride = null;
        overridePanel.classList.add("hidden");
        if (canAct("override")) decide(p.decision, p.reason, p.comment, true);
        return;
      }
    }
    const rejectOpen = !rejectPanel.classList.contains("hidden");
    if (rejectOpen && /^[0-9]$/.test(k)) {
      ev.preventDefault();
      const code = page.reasons[Number(k) - 1];
      if (code) pickReason(code);
      else say("no reason " + k + ": press 1–" + nReasons);
      return;
    }
    if (rejectOpen && k === "Enter") { ev.preventDefault(); submitReject(); return; }
    switch (lower) {
      case "a": accept(); break;
      case "r": openReject(); break;
      case "s": skip(); break;
      case "u": undo(); break;
      case "f": flip(); break;
      case "z": if (ev.ctrlKey) undo(); else say("Z does nothing alone: Ctrl+Z (or U) undoes"); break;
      case "arrowleft": go(page.prev_url); break;
      case "arrowright": go(page.next_url); break;
      case "v": {
        const to = viewer.classList.contains("sbs") ? "ovl" : "sbs";
        setView(to);
        say(to === "sbs" ? "side by side: photo | depth" : "overlay: depth over the photo (opacity [ ])", true);
        break;
      }
      case "m":
        if ($("show-mask").disabled) { say("no reliability mask for this item"); break; }
        $("show-mask").checked = !$("show-mask").checked; applyToggles();
        say("unreliable overlay " + ($("show-mask").checked ? "on (hatched grey)" : "off (plain grey on the depth)"), true);
        break;
      case "y": $("show-sky").checked = !$("show-sky").checked; applyToggles(); say("sky overlay " + ($("show-sky").checked ? "on" : "off"), true); break;
      case "[": nudgeOpacity(-10); break;
      case "]": nudgeOpacity(10); break;
      case "g": go(page.grid_url); break;
      default:
        if (/^[0-9]$/.test(k)) say("digits pick a reason after R");
        else if (k === "Enter") say("Enter confirms a reject or an override: nothing to confirm");
        else say(keyName(ev) + " does nothing here: the keys are listed on the right");
    }
    ev.preventDefault();
  });

  // tests and scripts wait for this: set once every map on the page has loaded (or failed)
  function markReady() {
    if (viewerImages().every((i) => i.complete)) {
      fit();
      document.body.dataset.ready = "1";
    }
  }
  viewerImages().forEach((i) => { i.addEventListener("load", markReady); i.addEventListener("error", markReady); });
  markReady();
})();
