// The debug page of a duality app (package debughttp): it draws the
// topology of api/topology as a layered SVG and polls api/metrics (and
// api/stores, every fifth time) for counts, rates and lag.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const NS = "http://www.w3.org/2000/svg";
  const page = { refresh: 1000, graph: null, prev: null, polls: 0, live: new Map(), sizes: null };

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(`${url}: ${r.status} ${body.error || r.statusText}`);
    return body;
  }

  const num = (n) => Number(n).toLocaleString("en-US");
  const rate = (x) => (x == null || !isFinite(x) ? "" : (Math.abs(x) < 10 ? x.toFixed(1) : num(Math.round(x))) + "/s");
  function dur(ns) {
    if (ns == null) return "–";
    if (!isFinite(ns)) return "> 34 s";
    if (ns < 1e3) return `${ns} ns`;
    if (ns < 1e6) return `${+(ns / 1e3).toPrecision(3)} µs`;
    if (ns < 1e9) return `${+(ns / 1e6).toPrecision(3)} ms`;
    return `${+(ns / 1e9).toPrecision(3)} s`;
  }
  // quantile is an upper bound of the q-quantile of a Histogram, whose
  // bucket i counts the observations up to 2^i (the last: any).
  function quantile(h, q) {
    if (!h || !h.Count) return null;
    const rank = Math.max(1, Math.ceil(q * h.Count));
    let seen = 0;
    for (let i = 0; i < h.Buckets.length; i++) {
      seen += h.Buckets[i];
      if (seen >= rank) return i === h.Buckets.length - 1 ? Infinity : 2 ** i;
    }
    return Infinity;
  }
  const sumBy = (items, key, val) => {
    const m = new Map();
    for (const it of items) m.set(key(it), (m.get(key(it)) || 0) + val(it));
    return m;
  };

  // ---- the topology, drawn once ----

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  // layering puts every node one layer below the lowest of the nodes it
  // has an edge from (longest path). A depth-first search from the nodes
  // without incoming edges finds the edges that close a cycle (the
  // topics of a foreign-key join feed each other's sub-topologies); they
  // are left out of the layering and drawn on the side.
  function layering(g) {
    const out = new Map(g.nodes.map((n) => [n.id, []]));
    for (const e of g.edges) if (out.has(e.from) && out.has(e.to)) out.get(e.from).push(e.to);
    const mark = new Map(), back = new Set(), post = [];
    const visit = (u) => {
      mark.set(u, 1);
      for (const v of out.get(u)) {
        if (mark.get(v) === 1) back.add(`${u}>${v}`);
        else if (!mark.has(v)) visit(v);
      }
      mark.set(u, 2);
      post.push(u);
    };
    const hasIn = new Set(g.edges.map((e) => e.to));
    for (const n of g.nodes) if (!hasIn.has(n.id) && !mark.has(n.id)) visit(n.id);
    for (const n of g.nodes) if (!mark.has(n.id)) visit(n.id);
    const layer = new Map(g.nodes.map((n) => [n.id, 0]));
    for (const u of post.reverse()) {
      for (const v of out.get(u)) if (!back.has(`${u}>${v}`)) layer.set(v, Math.max(layer.get(v), layer.get(u) + 1));
    }
    return { layer, back };
  }

  // rows orders each layer's nodes by the mean position of their
  // neighbours in the layer above, then below, a few times over (the
  // barycenter heuristic), nodes of one sub-topology side by side.
  function rows(g, layer, back) {
    const rs = [];
    for (const n of g.nodes) (rs[layer.get(n.id)] ||= []).push(n.id);
    const sub = new Map(g.nodes.map((n) => [n.id, n.subTopology]));
    const pos = new Map();
    rs.forEach((r) => r.forEach((id, i) => pos.set(id, i / r.length)));
    const preds = new Map(), succs = new Map();
    for (const e of g.edges) {
      if (back.has(`${e.from}>${e.to}`)) continue;
      (preds.get(e.to) || preds.set(e.to, []).get(e.to)).push(e.from);
      (succs.get(e.from) || succs.set(e.from, []).get(e.from)).push(e.to);
    }
    for (let it = 0; it < 6; it++) {
      const nbrs = it % 2 === 0 ? preds : succs;
      const seq = it % 2 === 0 ? rs.slice(1) : rs.slice(0, -1).reverse();
      for (const r of seq) {
        const key = new Map(r.map((id) => {
          const ns = nbrs.get(id) || [];
          return [id, ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length : pos.get(id)];
        }));
        r.sort((a, b) => key.get(a) - key.get(b) || sub.get(a) - sub.get(b));
        r.forEach((id, i) => pos.set(id, (i + 0.5) / r.length));
      }
    }
    return rs;
  }

  function drawNode(parent, n) {
    const step = n.kind === "source" || n.kind === "processor" || n.kind === "sink";
    const g = svg("g", { class: `node ${n.kind}`, "data-id": n.id, "data-name": n.name }, parent);
    const where = n.subTopology >= 0 ? `, sub-topology ${n.subTopology}` : "";
    svg("title", {}, g).textContent = `${n.name} (${n.op || n.kind}${where})${n.detail ? "\n" + n.detail : ""}`;
    const shape = svg(n.kind.endsWith("topic") ? "polygon" : "rect", { class: "shape" }, g);
    const lines = [[n.name, "name"]];
    if (step && n.op && n.op !== n.name) lines.push([n.op, "op"]);
    if (n.kind === "global-store") lines.push(["global store", "op"]);
    if (n.detail) lines.push([n.detail.length > 56 ? n.detail.slice(0, 55) + "…" : n.detail, "detail"]);
    lines.push(["", "live"]);
    lines.forEach(([text, cls], i) => {
      const t = svg("text", { x: 0, y: 17 + i * 15, "text-anchor": "middle", class: cls }, g);
      t.textContent = text;
      if (cls === "live") page.live.set(n.id, t);
    });
    const w = Math.max(g.getBBox().width, 96) + 24, h = lines.length * 15 + 8;
    if (n.kind.endsWith("topic")) {
      shape.setAttribute("points", `${-w / 2 + 7},0 ${w / 2 + 7},0 ${w / 2 - 7},${h} ${-w / 2 - 7},${h}`);
    } else {
      const round = n.kind.endsWith("store") ? 12 : 4;
      for (const [k, v] of Object.entries({ x: -w / 2, y: 0, width: w, height: h, rx: round })) shape.setAttribute(k, v);
    }
    if (n.subTopology >= 0) {
      svg("rect", { class: "sub", x: -w / 2 + 1, y: 4, width: 4, height: h - 8, fill: `hsl(${(n.subTopology * 67) % 360} 55% 55%)` }, g);
    }
    return { g, w, h };
  }

  function drawTopology(graph) {
    const root = $("topology");
    root.replaceChildren();
    page.live.clear();
    if (!graph.nodes || !graph.nodes.length) {
      svg("text", { x: 12, y: 24 }, root).textContent = "no topology to draw (a topology written by hand)";
      root.setAttribute("width", 420);
      root.setAttribute("height", 40);
      return;
    }
    const defs = svg("defs", {}, root);
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    svg("path", { d: "M0,0L10,5L0,10z", class: "arrow" }, marker);
    const edgeLayer = svg("g", { class: "edges" }, root);
    const nodeLayer = svg("g", { class: "nodes" }, root);
    const { layer, back } = layering(graph);
    const byID = new Map();
    for (const n of graph.nodes) byID.set(n.id, drawNode(nodeLayer, n));
    const rs = rows(graph, layer, back);
    const gapX = 28, gapY = 44, margin = 16;
    const widths = rs.map((r) => r.reduce((a, id) => a + byID.get(id).w, 0) + gapX * (r.length - 1));
    const width = Math.max(...widths) + 2 * margin + 70;
    let y = margin;
    rs.forEach((r, i) => {
      let x = margin + (width - 70 - 2 * margin - widths[i]) / 2;
      const h = Math.max(...r.map((id) => byID.get(id).h));
      for (const id of r) {
        const b = byID.get(id);
        b.x = x + b.w / 2;
        b.y = y + (h - b.h) / 2;
        b.g.setAttribute("transform", `translate(${b.x},${b.y})`);
        x += b.w + gapX;
      }
      y += h + gapY;
    });
    for (const e of graph.edges) {
      const u = byID.get(e.from), v = byID.get(e.to);
      if (!u || !v) continue;
      let d;
      if (back.has(`${e.from}>${e.to}`) || v.y <= u.y) {
        const x1 = u.x + u.w / 2, y1 = u.y + u.h / 2, x2 = v.x + v.w / 2, y2 = v.y + v.h / 2;
        const bend = Math.max(x1, x2) + 50;
        d = `M${x1},${y1} C${bend},${y1} ${bend},${y2} ${x2},${y2}`;
      } else {
        const y1 = u.y + u.h, y2 = v.y - 1, mid = (y2 - y1) / 2;
        d = `M${u.x},${y1} C${u.x},${y1 + mid} ${v.x},${y2 - mid} ${v.x},${y2}`;
      }
      const p = svg("path", { d, class: `edge ${e.kind}`, "data-from": e.from, "data-to": e.to }, edgeLayer);
      if (e.kind !== "store") p.setAttribute("marker-end", "url(#arrow)");
    }
    root.setAttribute("width", width);
    root.setAttribute("height", y - gapY + margin);
    root.setAttribute("viewBox", `0 0 ${width} ${y - gapY + margin}`);
  }

  // ---- the numbers, on every poll ----

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function renderMetrics(m) {
    const prev = page.prev;
    const dt = prev ? (Date.parse(m.time) - Date.parse(prev.time)) / 1000 : 0;
    const per = (cur, old) => (dt > 0 ? (cur - old) / dt : null);
    const a = m.metrics, pa = prev && prev.metrics;
    const card = (id, value, r) => {
      $(id).textContent = value;
      $(`${id}-rate`).textContent = r;
    };
    card("processed", num(a.RecordsProcessed), rate(pa && per(a.RecordsProcessed, pa.RecordsProcessed)));
    card("produced", num(a.RecordsProduced), rate(pa && per(a.RecordsProduced, pa.RecordsProduced)));
    card("commits", num(a.Commits), pa ? `${rate(per(a.Commits, pa.Commits))}, last ${dur(a.LastCommitDuration)}` : "");
    const failed = a.RecordsSkipped + a.RecordsDeadLettered;
    card("failed", `${num(a.RecordsSkipped)}, ${num(a.RecordsDeadLettered)}`,
      rate(pa && per(failed, pa.RecordsSkipped + pa.RecordsDeadLettered)));
    const active = m.tasks.filter((t) => t.Active);
    const parts = active.flatMap((t) => t.Partitions || []);
    const lag = parts.reduce((s, p) => s + p.Lag, 0);
    card("lag", num(lag), `over ${parts.length} partition${parts.length === 1 ? "" : "s"}`);
    $("latency").textContent = `${dur(quantile(a.ProcessLatency, 0.5))}, ${dur(quantile(a.ProcessLatency, 0.99))}`;
    $("commit-latency").textContent = a.CommitLatency.Count ? `commit p99 ${dur(quantile(a.CommitLatency, 0.99))}` : "";
    $("tasks-count").textContent = num(a.Tasks);
    $("assignments").textContent = `${a.StandbyTasks} standby, ${a.WarmupTasks} warm-up, ${num(a.Assignments)} assignments`;

    // Tasks.
    const prevTasks = new Map(prev ? prev.tasks.map((t) => [t.id, t]) : []);
    const tbody = $("tasks").tBodies[0];
    tbody.replaceChildren();
    for (const t of m.tasks) {
      const tr = document.createElement("tr");
      tr.dataset.task = t.id;
      if (!t.Active) tr.className = "moved";
      const pt = prevTasks.get(t.id);
      const tl = (t.Partitions || []).reduce((s, p) => s + p.Lag, 0);
      cell(tr, t.id);
      cell(tr, t.Active ? "running" : "moved away");
      cell(tr, num(t.RecordsProcessed), "num");
      cell(tr, pt ? rate(per(t.RecordsProcessed, pt.RecordsProcessed)) : "", "num");
      cell(tr, num(tl), "num lag");
      cell(tr, dur(quantile(t.ProcessLatency, 0.99)), "num");
      cell(tr, (t.Partitions || []).map((p) =>
        `${p.Topic}[${p.Partition}] ${num(p.Position)} / ${p.Committed < 0 ? "–" : num(p.Committed)} / ${p.End < 0 ? "?" : num(p.End)} (${num(p.Lag)})`).join("\n"));
      tbody.appendChild(tr);
    }

    // Live figures on the topology: records in per second of each step
    // (summed over this instance's tasks), lag of each topic read here.
    const steps = (ms) => sumBy(ms.tasks.flatMap((t) => t.Steps || []), (s) => s.Step, (s) => s.RecordsIn);
    const stepIn = steps(m), prevIn = prev ? steps(prev) : null;
    const topicLag = sumBy(parts, (p) => p.Topic, (p) => p.Lag);
    const keys = page.sizes && sumBy(page.sizes, (s) => s.Store, (s) => s.Keys);
    for (const n of page.graph.nodes || []) {
      const t = page.live.get(n.id);
      if (!t) continue;
      if (stepIn.has(n.name) && (n.kind === "source" || n.kind === "processor" || n.kind === "sink")) {
        t.textContent = prevIn ? `in ${rate(per(stepIn.get(n.name), prevIn.get(n.name) || 0))}` : `${num(stepIn.get(n.name))} in`;
      } else if (n.kind.endsWith("topic") && topicLag.has(n.name)) {
        t.textContent = `lag ${num(topicLag.get(n.name))}`;
      } else if (n.kind === "store" && keys && keys.has(n.name)) {
        t.textContent = `${num(keys.get(n.name))} keys`;
      }
    }
  }

  function renderStores(s, m) {
    page.sizes = s.sizes;
    const hits = new Map();
    for (const t of m.tasks) {
      if (!t.Active) continue;
      for (const st of t.Stores || []) hits.set(`${st.Store}/${st.Partition}`, st);
    }
    const tbody = $("stores").tBodies[0];
    tbody.replaceChildren();
    for (const z of s.sizes) {
      const tr = document.createElement("tr");
      const st = hits.get(`${z.Store}/${z.Partition}`);
      cell(tr, z.Store);
      cell(tr, String(z.Partition), "num");
      cell(tr, num(z.Keys), "num");
      const reads = st ? st.CacheHits + st.CacheMisses : 0;
      cell(tr, reads ? `${((100 * st.CacheHits) / reads).toFixed(1)}% of ${num(reads)}` : "–", "num");
      cell(tr, !st || !st.RestoreTotal ? "–" : `${st.Restoring ? "restoring " : ""}${num(st.Restored)} / ${num(st.RestoreTotal)}`);
      tbody.appendChild(tr);
    }
    $("state").textContent = s.state
      ? `State on disk: ${num(s.state.DiskBytes)} bytes in ${s.state.Stores} stores; memtables ${num(s.state.MemTableBytes)} bytes, block cache ${num(s.state.BlockCacheBytes)} bytes, compaction debt ${num(s.state.CompactionDebt)} bytes.`
      : `State: ${s.stateError}`;
  }

  async function poll() {
    try {
      const m = await getJSON("api/metrics");
      if (page.polls % 5 === 0) renderStores(await getJSON("api/stores"), m);
      renderMetrics(m);
      page.prev = m;
      page.polls++;
      document.body.dataset.polls = page.polls;
      $("status").textContent = `updated ${new Date(m.time).toLocaleTimeString()}, every ${page.refresh / 1000} s`;
      $("status").className = "";
    } catch (err) {
      $("status").textContent = `error: ${err.message}`;
      $("status").className = "error";
    }
    setTimeout(poll, page.refresh);
  }

  // ---- store queries (package httpquery under query/) ----

  async function setupQueries(enabled) {
    const form = $("query"), out = $("query-result");
    if (!enabled) {
      form.hidden = true;
      out.textContent = "No store is served: create the handler with debughttp.Queries.";
      return;
    }
    const { stores } = await getJSON("query/");
    for (const s of stores) {
      const o = document.createElement("option");
      o.value = s.name;
      o.textContent = `${s.name} (${s.kind})`;
      $("query-store").appendChild(o);
    }
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const store = encodeURIComponent($("query-store").value), key = $("query-key").value;
      const url = key ? `query/stores/${store}/keys/${encodeURIComponent(key)}` : `query/stores/${store}?limit=20`;
      try {
        const r = await fetch(url, { cache: "no-store" });
        out.textContent = `${r.status} ${JSON.stringify(await r.json(), null, 2)}`;
      } catch (err) {
        out.textContent = `error: ${err.message}`;
      }
    });
  }

  async function start() {
    try {
      const topo = await getJSON("api/topology");
      page.refresh = topo.refreshMillis || page.refresh;
      page.graph = topo.graph;
      $("app").textContent = topo.app;
      document.title = `duality ${topo.app}`;
      $("describe").textContent = topo.describe;
      drawTopology(topo.graph);
      setupQueries(topo.queries).catch((err) => { $("query-result").textContent = `error: ${err.message}`; });
    } catch (err) {
      $("status").textContent = `error: ${err.message}`;
      $("status").className = "error";
      setTimeout(start, 2000);
      return;
    }
    poll();
  }
  start();
})();
