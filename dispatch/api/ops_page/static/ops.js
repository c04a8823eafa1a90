// The operations page (dispatch/api/ops_page): drivers by status, rides in flight, the
// supply/demand heatmap and the surge layer, drawn on an SVG with a Web-Mercator projection
// of its own, from the state the app's /ops/stream sends. No library, nothing from elsewhere
// (map tiles only when the app is configured with a tile URL).
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TILE = 256;
  const STATUS_COLOURS = {
    available: "#13794b", offered: "#d08700", en_route: "#1f5fbf", en_route_to_pickup: "#1f5fbf",
    assigned: "#1f5fbf", arrived: "#6b3fb3", on_trip: "#a3141b", in_progress: "#a3141b",
    busy: "#a3141b", offline: "#8a94a0",
  };
  const EXTRA = ["#0f7c86", "#8c5a14", "#5c2d91", "#444"];
  const config = JSON.parse(document.body.dataset.config || "{}");
  const map = document.getElementById("map");
  const layers = {};
  for (const id of ["tiles", "heatmap", "surge", "rides", "drivers"]) {
    layers[id] = document.getElementById(id);
  }
  const statusEl = document.getElementById("status");
  const countsEl = document.getElementById("counts");
  const legendEl = document.getElementById("legend");
  const tooltip = document.getElementById("tooltip");
  let state = null;
  let view = null; // {x, y}: the centre in world units (0..1); k: pixels per world unit
  let fitted = false;

  // Web Mercator: longitude and latitude to world units, 0..1 each way (y down).
  function project(lat, lng) {
    const s = Math.sin((Math.max(-85.05113, Math.min(85.05113, lat)) * Math.PI) / 180);
    return [(lng + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
  }
  function size() {
    const box = map.getBoundingClientRect();
    return [Math.max(1, box.width), Math.max(1, box.height)];
  }
  function toScreen(lat, lng) {
    const [wx, wy] = project(lat, lng);
    const [w, h] = size();
    return [(wx - view.x) * view.k + w / 2, (wy - view.y) * view.k + h / 2];
  }
  function colourOf(status) {
    if (!(status in STATUS_COLOURS)) {
      const known = Object.keys(STATUS_COLOURS).length;
      STATUS_COLOURS[status] = EXTRA[known % EXTRA.length];
    }
    return STATUS_COLOURS[status];
  }
  function el(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function fit() {
    const points = [];
    if (state) {
      for (const d of state.drivers) points.push(project(d.lat, d.lng));
      for (const r of state.rides) if (r.pickup) points.push(project(r.pickup[0], r.pickup[1]));
      for (const c of state.heatmap.concat(state.surge)) {
        for (const [lat, lng] of c.boundary) points.push(project(lat, lng));
      }
    }
    const [w, h] = size();
    if (!points.length) {
      view = { x: 0.5, y: 0.5, k: Math.min(w, h) };
      return false;
    }
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const span = Math.max(x1 - x0, y1 - y0, 2e-5); // at least a few hundred metres
    const k = Math.min(w, h) / (span * 1.3);
    view = { x: (x0 + x1) / 2, y: (y0 + y1) / 2, k: Math.min(k, TILE * 2 ** 19) };
    return true;
  }

  function polygon(boundary) {
    return boundary.map(([lat, lng]) => toScreen(lat, lng).map((v) => v.toFixed(1)).join(","))
      .join(" ");
  }

  function drawTiles() {
    layers.tiles.replaceChildren();
    if (!config.tile_url) return;
    const [w, h] = size();
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(view.k / TILE))));
    const n = 2 ** z;
    const scale = view.k / n; // pixels per tile
    const left = view.x - w / 2 / view.k;
    const top = view.y - h / 2 / view.k;
    const tx0 = Math.floor(left * n);
    const ty0 = Math.max(0, Math.floor(top * n));
    const tx1 = Math.floor((left + w / view.k) * n);
    const ty1 = Math.min(n - 1, Math.floor((top + h / view.k) * n));
    for (let tx = tx0; tx <= tx1; tx++) {
      for (let ty = ty0; ty <= ty1; ty++) {
        const x = ((tx % n) + n) % n;
        const href = config.tile_url.replace("{z}", z).replace("{x}", x).replace("{y}", ty);
        layers.tiles.appendChild(el("image", {
          href, x: ((tx / n - left) * view.k).toFixed(1), y: ((ty / n - top) * view.k).toFixed(1),
          width: scale.toFixed(1), height: scale.toFixed(1),
        }));
      }
    }
  }

  function heatFill(cell) {
    // Demand over supply: green where drivers outnumber waiting rides, red the other way.
    const total = cell.supply + cell.demand;
    const share = total ? cell.demand / total : 0;
    const hue = Math.round(130 * (1 - share));
    const alpha = Math.min(0.75, 0.2 + 0.08 * total);
    return `hsla(${hue}, 70%, 45%, ${alpha.toFixed(2)})`;
  }

  function draw() {
    if (!state || !view) return;
    drawTiles();
    const show = (id) => document.getElementById("show-" + id).checked;
    const heat = [];
    if (show("heatmap")) {
      for (const c of state.heatmap) {
        const node = el("polygon", {
          class: "hex", points: polygon(c.boundary), fill: heatFill(c), "data-cell": c.cell,
          "data-supply": c.supply, "data-demand": c.demand,
        });
        node.dataset.tip = `cell ${c.cell}\nsupply ${c.supply}, demand ${c.demand}`;
        heat.push(node);
      }
    }
    layers.heatmap.replaceChildren(...heat);
    const surge = [];
    if (show("surge")) {
      for (const c of state.surge) {
        const node = el("polygon", {
          class: "surge-hex", points: polygon(c.boundary), "data-cell": c.cell,
          "data-multiplier": c.multiplier,
        });
        node.dataset.tip = `surge ${c.multiplier}x\ncell ${c.cell}`;
        surge.push(node);
      }
    }
    layers.surge.replaceChildren(...surge);
    const byId = new Map(state.drivers.map((d) => [d.id, d]));
    const rides = [];
    if (show("rides")) {
      for (const r of state.rides) {
        if (!r.pickup) continue; // erased
        const [x, y] = toScreen(r.pickup[0], r.pickup[1]);
        const driver = r.driver_id && byId.get(r.driver_id);
        if (driver) {
          const [dx, dy] = toScreen(driver.lat, driver.lng);
          rides.push(el("line", { class: "ride-link", x1: x, y1: y, x2: dx, y2: dy }));
        }
        const node = el("rect", {
          class: "ride", x: (x - 5).toFixed(1), y: (y - 5).toFixed(1), width: 10, height: 10,
          "data-ride-id": r.id, "data-status": r.status,
        });
        node.dataset.tip = `ride ${r.id}\n${r.status}` + (r.driver_id ? `\ndriver ${r.driver_id}` : "");
        rides.push(node);
      }
    }
    layers.rides.replaceChildren(...rides);
    const drivers = [];
    if (show("drivers")) {
      for (const d of state.drivers) {
        const [x, y] = toScreen(d.lat, d.lng);
        const node = el("circle", {
          class: "driver", cx: x.toFixed(1), cy: y.toFixed(1), r: 5, fill: colourOf(d.status),
          "data-driver-id": d.id, "data-status": d.status, "data-lat": d.lat, "data-lng": d.lng,
        });
        node.dataset.tip = `driver ${d.id}\n${d.status}\n${d.lat}, ${d.lng}`;
        drivers.push(node);
      }
    }
    layers.drivers.replaceChildren(...drivers);
    map.dataset.drivers = String(state.drivers.length);
    map.dataset.at = state.at;
  }

  function legend() {
    const seen = [...new Set(state.drivers.map((d) => d.status))].sort();
    legendEl.replaceChildren(...seen.map((s) => {
      const span = document.createElement("span");
      const dot = document.createElement("i");
      dot.style.background = colourOf(s);
      span.append(dot, s);
      return span;
    }));
    const cut = (shown, total) => (shown < total ? `${shown} of ${total}` : `${total}`);
    countsEl.textContent =
      `${cut(state.drivers.length, state.drivers_total)} drivers, ` +
      `${cut(state.rides.length, state.rides_total)} rides in flight, ` +
      `${state.surge.length} surge cells, at ${state.at}`;
  }

  function receive(next) {
    state = next;
    if (!fitted) fitted = fit();
    legend();
    draw();
  }

  // The time slider: minutes before now; 0 is live. A past moment is asked for once the
  // slider is let go (GET /ops/state?at=, replayed outside the API), and the live stream's
  // states are kept aside meanwhile.
  const slider = document.getElementById("time");
  const timeLabel = document.getElementById("time-label");
  const liveButton = document.getElementById("live");
  const pastNote = document.getElementById("past-note");
  let past = null; // the ISO time shown, or null when live
  let latest = null; // the last live state received while a past one is shown
  let asked = 0; // answers to an older request are dropped

  function momentOf(minutes) {
    return new Date(Date.now() + minutes * 60000);
  }

  function goLive() {
    past = null;
    slider.value = "0";
    timeLabel.textContent = "live";
    liveButton.disabled = true;
    pastNote.textContent = "";
    statusEl.textContent = "live";
    statusEl.dataset.state = "live";
    map.dataset.mode = "live";
    if (latest !== null) receive(latest);
  }

  async function showPast(minutes) {
    await showAt(momentOf(minutes).toISOString());
  }

  async function showAt(at) {
    const mine = ++asked;
    past = at;
    liveButton.disabled = false;
    timeLabel.textContent = at.replace("T", " ").slice(0, 16) + " UTC";
    statusEl.textContent = "replaying…";
    statusEl.dataset.state = "past";
    map.dataset.mode = "replaying";
    let body;
    try {
      const answer = await fetch("/ops/state?at=" + encodeURIComponent(at), { credentials: "same-origin" });
      body = await answer.json();
      if (!answer.ok) throw new Error(body.reason || answer.statusText);
    } catch (error) {
      if (mine !== asked) return;
      statusEl.textContent = "past state failed: " + error.message;
      map.dataset.mode = "failed";
      return;
    }
    if (mine !== asked || past === null) return;
    statusEl.textContent = "past: " + body.at;
    map.dataset.mode = "past";
    const byStatus = Object.entries(body.drivers_by_status || {})
      .map(([s, n]) => `${n} ${s}`).join(", ");
    pastNote.textContent = `${body.note}; drivers ${byStatus || "none"}` +
      (body.positions_at ? `; positions as of ${body.positions_at}` : "; no positions known");
    receive(body);
  }

  slider.addEventListener("input", () => {
    const minutes = Number(slider.value);
    timeLabel.textContent = minutes === 0 ? "live" :
      momentOf(minutes).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  });
  slider.addEventListener("change", () => {
    const minutes = Number(slider.value);
    if (minutes === 0) goLive(); else showPast(minutes);
  });
  liveButton.addEventListener("click", goLive);
  // An exact moment, typed as UTC (an incident report's time, say).
  document.getElementById("time-at").addEventListener("change", (event) => {
    const text = event.target.value;
    if (!text) return;
    const when = new Date(text + (text.length === 16 ? ":00Z" : "Z"));
    if (Number.isNaN(when.getTime())) return;
    slider.value = String(Math.max(-1440, Math.min(0, Math.round((when - Date.now()) / 60000))));
    showAt(when.toISOString());
  });

  function connect() {
    const source = new EventSource("/ops/stream");
    source.addEventListener("open", () => {
      if (past !== null) return;
      statusEl.textContent = "live";
      statusEl.dataset.state = "live";
    });
    source.addEventListener("state", (event) => {
      latest = JSON.parse(event.data); // kept aside while a past state is shown
      if (past === null) receive(latest);
    });
    source.addEventListener("end", (event) => {
      source.close();
      const reason = JSON.parse(event.data).reason;
      statusEl.textContent = "ended: " + reason;
      statusEl.dataset.state = "lost";
      // The session ended (or the stream's time did): the page signs in again or reconnects.
      setTimeout(() => (reason === "max duration" ? connect() : location.reload()), 1000);
    });
    source.addEventListener("error", () => {
      statusEl.textContent = "reconnecting";
      statusEl.dataset.state = "lost";
      if (source.readyState === EventSource.CLOSED) setTimeout(() => location.reload(), 3000);
    });
  }

  // Pan by dragging, zoom with the wheel around the pointer.
  let drag = null;
  map.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY };
    map.classList.add("dragging");
    map.setPointerCapture(e.pointerId);
  });
  map.addEventListener("pointermove", (e) => {
    if (drag && view) {
      view.x -= (e.clientX - drag.x) / view.k;
      view.y -= (e.clientY - drag.y) / view.k;
      drag = { x: e.clientX, y: e.clientY };
      draw();
      return;
    }
    const tip = e.target.dataset && e.target.dataset.tip;
    tooltip.hidden = !tip;
    if (tip) {
      tooltip.textContent = tip;
      tooltip.style.left = e.offsetX + 12 + "px";
      tooltip.style.top = e.offsetY + 12 + "px";
    }
  });
  map.addEventListener("pointerup", () => {
    drag = null;
    map.classList.remove("dragging");
  });
  map.addEventListener("wheel", (e) => {
    if (!view) return;
    e.preventDefault();
    const box = map.getBoundingClientRect();
    const [w, h] = size();
    const px = e.clientX - box.left - w / 2;
    const py = e.clientY - box.top - h / 2;
    const factor = Math.exp(-e.deltaY * 0.0015);
    const k = Math.max(64, Math.min(TILE * 2 ** 20, view.k * factor));
    view.x += px / view.k - px / k;
    view.y += py / view.k - py / k;
    view.k = k;
    draw();
  }, { passive: false });
  document.getElementById("fit").addEventListener("click", () => {
    fitted = fit();
    draw();
  });
  for (const id of ["heatmap", "surge", "rides", "drivers"]) {
    document.getElementById("show-" + id).addEventListener("change", draw);
  }
  window.addEventListener("resize", draw);

  fit();
  connect();
})();
