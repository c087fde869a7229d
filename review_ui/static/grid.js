// redweb review: grid of thumbnails, bulk accept/reject. Keyboard: arrows, X/Space, *, Shift+A, Shift+R, Enter.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const tiles = Array.from(document.querySelectorAll(".tile"));
  const flash = $("flash");

  function say(text, ok) {
    flash.textContent = text;
    flash.classList.toggle("ok", !!ok);
    flash.classList.remove("hidden");
    clearTimeout(say.timer);
    say.timer = setTimeout(() => flash.classList.add("hidden"), 5000);
  }
  function picked() { return tiles.filter((t) => { const c = t.querySelector(".pick"); return c && c.checked; }); }
  function refresh() {
    tiles.forEach((t) => { const c = t.querySelector(".pick"); t.classList.toggle("picked", !!(c && c.checked)); });
    $("selected-count").textContent = String(picked().length);
  }
  function toggle(tile) {
    const c = tile.querySelector(".pick");
    if (c && !c.disabled) { c.checked = !c.checked; refresh(); }
  }
  function selectAll(on) {
    tiles.forEach((t) => { const c = t.querySelector(".pick"); if (c && !c.disabled) c.checked = on; });
    refresh();
  }
  async function bulk(decision) {
    const ids = picked().map((t) => t.dataset.id);
    if (!ids.length) { say("select items first (X or click)"); return; }
    const body = { item_ids: ids, decision: decision };
    if (decision === "rejected") { body.reason = $("bulk-reason").value; body.comment = $("bulk-comment").value || null; }
    const res = await fetch("/api/bulk", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* empty */ }
    if (!res.ok) { say(typeof data.error === "string" ? data.error : res.statusText); return; }
    const failed = Object.keys(data.failed || {});
    say(data.done.length + " " + decision + (failed.length ? ", " + failed.length + " not changed: " + Object.values(data.failed)[0] : ""), !failed.length);
    setTimeout(() => window.location.reload(), failed.length ? 1500 : 300);
  }

  tiles.forEach((t) => {
    const c = t.querySelector(".pick");
    if (c) c.addEventListener("change", refresh);
  });
  $("select-all").addEventListener("click", () => selectAll(true));
  $("select-none").addEventListener("click", () => selectAll(false));
  $("bulk-accept").addEventListener("click", () => bulk("accepted"));
  $("bulk-reject").addEventListener("click", () => bulk("rejected"));

  function columns() {
    if (tiles.length < 2) return 1;
    const top = tiles[0].offsetTop;
    const n = tiles.findIndex((t) => t.offsetTop !== top);
    return n === -1 ? tiles.length : n;
  }
  document.addEventListener("keydown", (ev) => {
    const tag = ev.target.tagName;
    if ((tag === "INPUT" && (ev.target.type !== "checkbox" || ev.key === " ")) || tag === "SELECT" || tag === "TEXTAREA") return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    // a held key's auto-repeat must not toggle a tile back and forth or send a bulk decision twice
    if (ev.repeat && ["x", " ", "*", "A", "R", "Enter"].includes(ev.key)) { ev.preventDefault(); return; }
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
    } else if (ev.key === "Enter" && i !== -1) {
      window.location.assign("/item/" + tiles[i].dataset.id);
    } else {
      return;
    }
    ev.preventDefault();
  });
  refresh();
  document.body.dataset.ready = "1"; // tests and scripts wait for this
})();
