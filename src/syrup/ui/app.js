// Syrup's web UI: a small single-page app over the REST API (no framework, no network
// beyond this server). Routes: #/login, #/apps, #/apps/<name>. Live updates come from the
// Server-Sent Events stream /api/v1/stream/applications; the session is an HttpOnly cookie.

const main = document.getElementById("main");
const state = { user: null, apps: new Map(), stream: null, view: null, filters: loadFilters() };

// -- helpers ------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(text) {
  return h("span", { class: `badge ${text}`, title: text }, text || "Unknown");
}

function toast(message, isError = false) {
  const el = h("div", { class: isError ? "err" : "" }, message);
  document.getElementById("toast").append(el);
  setTimeout(() => el.remove(), isError ? 8000 : 4000);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.field = body.field;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body !== undefined ? { "Content-Type": "application/json" } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : {};
  if (res.status === 401 && !path.endsWith("/session")) {
    state.user = null;
    location.hash = "#/login";
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const syncOf = (a) => a.status?.sync?.status || "Unknown";
const healthOf = (a) => a.status?.health?.status || "Unknown";
const enc = encodeURIComponent;

function loadFilters() {
  try { return JSON.parse(localStorage.getItem("syrup.filters")) || {}; } catch { return {}; }
}

// -- YAML (display only) and diff rendering ---------------------------------------------

function toYaml(value, indent = "") {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return value.map((v) => {
      const inner = toYaml(v, indent + "  ");
      return `\n${indent}- ${typeof v === "object" && v !== null ? inner.trimStart() : inner}`;
    }).join("");
  }
  if (typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    return keys.map((k) => {
      const v = value[k];
      const inner = toYaml(v, indent + "  ");
      const block = typeof v === "object" && v !== null && Object.keys(v).length;
      return `\n${indent}${k}:${block ? inner : " " + inner}`;
    }).join("");
  }
  if (typeof value === "string") {
    return /^[\w./:@-][\w ./:@=,+-]*$/.test(value) && !/^(true|false|null|\d.*)$/.test(value)
      ? value : JSON.stringify(value);
  }
  return String(value);
}

function yamlBlock(obj) {
  const pre = h("pre", { class: "code" });
  const text = obj ? toYaml(obj).trimStart() : "# (not present)";
  for (const line of text.split("\n")) {
    const m = line.match(/^(\s*-?\s*)([\w.\/-]+):(.*)$/);
    if (m) pre.append(m[1], h("span", { class: "k" }, m[2]), ":", h("span", { class: "s" }, m[3]), "\n");
    else pre.append(line, "\n");
  }
  return pre;
}

function unifiedBlock(diff) {
  const pre = h("pre", { class: "code diff" });
  if (!diff) { pre.append("# no differences"); return pre; }
  for (const line of diff.split("\n")) {
    const cls = line.startsWith("@@") ? "hunk"
      : line.startsWith("+") && !line.startsWith("+++") ? "add"
      : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
    pre.append(cls ? h("span", { class: cls }, line) : line + "\n");
  }
  return pre;
}

function sideBySide(diff) {
  const left = h("pre", { class: "code diff" }), right = h("pre", { class: "code diff" });
  for (const line of (diff || "").split("\n")) {
    if (line.startsWith("---") || line.startsWith("+++")) continue;
    if (line.startsWith("@@")) { left.append(h("span", { class: "hunk" }, line)); right.append(h("span", { class: "hunk" }, line)); }
    else if (line.startsWith("-")) { left.append(h("span", { class: "del" }, line.slice(1))); right.append(h("span", {}, " "), "\n"); }
    else if (line.startsWith("+")) { right.append(h("span", { class: "add" }, line.slice(1))); left.append(h("span", {}, " "), "\n"); }
    else { left.append(line.slice(1) + "\n"); right.append(line.slice(1) + "\n"); }
  }
  return h("div", { class: "side" }, h("div", {}, h("b", {}, "Live"), left), h("div", {}, h("b", {}, "Desired"), right));
}

function diffView(diff) {
  const wrap = h("div", { class: "diffview" });
  let mode = localStorage.getItem("syrup.diffmode") || "unified";
  const body = h("div");
  const draw = () => { body.replaceChildren(mode === "unified" ? unifiedBlock(diff) : sideBySide(diff)); };
  const tabs = h("div", { class: "tabs", role: "tablist" },
    ...["unified", "side-by-side"].map((m) => h("button", {
      type: "button", role: "tab", "aria-selected": String(m === mode),
      onclick: (e) => {
        mode = m; localStorage.setItem("syrup.diffmode", m);
        for (const b of tabs.children) b.setAttribute("aria-selected", String(b === e.target));
        draw();
      },
    }, m)));
  draw();
  wrap.append(tabs, body);
  return wrap;
}

// -- live stream --------------------------------------------------------------------------

function connectStream() {
  if (state.stream) return;
  const es = new EventSource("/api/v1/stream/applications");
  state.stream = es;
  es.addEventListener("hello", () => document.querySelectorAll(".live").forEach((e) => e.classList.remove("off")));
  es.addEventListener("application", (ev) => {
    const { type, application } = JSON.parse(ev.data);
    const name = application.metadata.name;
    if (type === "DELETED") state.apps.delete(name); else state.apps.set(name, application);
    state.view?.onApp?.(type, application);
  });
  es.onerror = () => {
    document.querySelectorAll(".live").forEach((e) => e.classList.add("off"));
    if (es.readyState === EventSource.CLOSED) { state.stream = null; setTimeout(connectStream, 2000); }
  };
}

// -- pages ----------------------------------------------------------------------------------

function loginPage() {
  const err = h("p", { class: "error", role: "alert" });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", value: "admin", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", {
    class: "card login",
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      try {
        await api("POST", "/api/v1/session", { username: user.value, password: pass.value });
        await whoami();
        location.hash = "#/apps";
      } catch (ex) { err.textContent = ex.message; pass.select(); }
    },
  },
  h("h1", {}, "Log in to Syrup"),
  h("label", { for: "username" }, "Username"), user,
  h("label", { for: "password" }, "Password"), pass,
  h("button", { class: "primary", type: "submit" }, "Log in"),
  err,
  h("p", { class: "muted" }, "The admin password is printed once by the first ‘syrup up’."));
  main.replaceChildren(form);
  pass.focus();
  return {};
}

function appMatches(a, f) {
  const spec = a.spec || {};
  if (f.project && (spec.project || "default") !== f.project) return false;
  if (f.namespace && spec.destination?.namespace !== f.namespace) return false;
  if (f.health && healthOf(a) !== f.health) return false;
  if (f.sync && syncOf(a) !== f.sync) return false;
  if (f.label) {
    const [k, v] = f.label.split("=");
    const labels = a.metadata.labels || {};
    if (v === undefined ? !(k in labels) : labels[k] !== v) return false;
  }
  if (f.search && !a.metadata.name.toLowerCase().includes(f.search.toLowerCase())) return false;
  return true;
}

async function appsPage() {
  main.replaceChildren(h("p", { class: "muted" }, "Loading applications…"));
  let data;
  try { data = await api("GET", "/api/v1/applications"); }
  catch (ex) { main.replaceChildren(errorState("Could not load applications", ex)); return {}; }
  state.apps = new Map(data.items.map((a) => [a.metadata.name, a]));
  const f = state.filters;
  let layout = localStorage.getItem("syrup.layout") || "tiles";
  const body = h("div", { id: "apps" });
  const distinct = (fn) => [...new Set([...state.apps.values()].map(fn).filter(Boolean))].sort();

  const select = (key, label, options) => h("select", {
    "aria-label": label, "data-filter": key,
    onchange: (e) => { f[key] = e.target.value; save(); draw(); },
  }, h("option", { value: "" }, label), ...options.map((o) => h("option", { value: o, selected: f[key] === o }, o)));

  const save = () => localStorage.setItem("syrup.filters", JSON.stringify(f));

  function draw() {
    const apps = [...state.apps.values()].filter((a) => appMatches(a, f)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    if (!state.apps.size) {
      body.replaceChildren(h("div", { class: "card empty" },
        h("h2", {}, "No applications yet"),
        h("p", {}, "Create one with ", h("code", {}, "syrup app create NAME --repo URL --path DIR --dest-server https://kubernetes.default.svc --dest-namespace NS"),
          ", or start Syrup with ", h("code", {}, "syrup up --demo"), " to get the demo apps.")));
      return;
    }
    if (!apps.length) {
      body.replaceChildren(h("div", { class: "card empty" }, h("h2", {}, "No application matches these filters"),
        h("button", { type: "button", onclick: () => { for (const k of Object.keys(f)) f[k] = ""; save(); render(); } }, "Clear filters")));
      return;
    }
    if (layout === "tiles") {
      body.replaceChildren(h("div", { class: "tiles" }, ...apps.map((a) => h("a", {
        class: `card tile ${healthOf(a)}`, href: `#/apps/${enc(a.metadata.name)}`, "data-app": a.metadata.name,
      },
      h("h3", {}, a.metadata.name),
      badge(healthOf(a)), " ", badge(syncOf(a)),
      h("dl", {},
        h("dt", {}, "Project"), h("dd", {}, a.spec?.project || "default"),
        h("dt", {}, "Namespace"), h("dd", {}, a.spec?.destination?.namespace || ""),
        h("dt", {}, "Repository"), h("dd", {}, a.spec?.source?.repoURL || ""),
        h("dt", {}, "Path"), h("dd", {}, a.spec?.source?.path || ""),
        h("dt", {}, "Sync"), h("dd", {}, a.spec?.syncPolicy?.automated ? "Auto" : "Manual"))))));
    } else {
      body.replaceChildren(h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Name", "Health", "Sync", "Project", "Namespace"].map((c) => h("th", {}, c)), h("th", { class: "wide" }, "Repository"))),
        h("tbody", {}, ...apps.map((a) => h("tr", { "data-app": a.metadata.name },
          h("td", {}, h("a", { href: `#/apps/${enc(a.metadata.name)}` }, a.metadata.name)),
          h("td", {}, badge(healthOf(a))), h("td", {}, badge(syncOf(a))),
          h("td", {}, a.spec?.project || "default"), h("td", {}, a.spec?.destination?.namespace || ""),
          h("td", { class: "wide" }, a.spec?.source?.repoURL || ""))))));
    }
  }

  function render() {
    const search = h("input", { type: "search", placeholder: "Search by name", "aria-label": "Search", value: f.search || "",
      oninput: (e) => { f.search = e.target.value; save(); draw(); } });
    const label = h("input", { placeholder: "label=value", "aria-label": "Label", value: f.label || "", size: 14,
      onchange: (e) => { f.label = e.target.value.trim(); save(); draw(); } });
    const toggle = h("button", { type: "button", "aria-pressed": String(layout === "list"),
      onclick: () => { layout = layout === "tiles" ? "list" : "tiles"; localStorage.setItem("syrup.layout", layout); render(); } },
      layout === "tiles" ? "List view" : "Tile view");
    main.replaceChildren(
      h("h1", {}, "Applications ", h("span", { class: "live off", title: "live updates" }, "live")),
      h("div", { class: "toolbar" }, search,
        select("project", "All projects", distinct((a) => a.spec?.project || "default")),
        select("namespace", "All namespaces", distinct((a) => a.spec?.destination?.namespace)),
        select("health", "Any health", ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"]),
        select("sync", "Any sync", ["Synced", "OutOfSync", "Unknown"]),
        label, h("span", { class: "grow" }), toggle),
      body);
    draw();
    if (state.stream?.readyState === EventSource.OPEN) main.querySelector(".live")?.classList.remove("off");
  }
  render();
  return { onApp: () => draw() };
}

function errorState(title, ex) {
  return h("div", { class: "card empty", role: "alert" }, h("h2", {}, title), h("p", { class: "error" }, ex.message),
    h("button", { type: "button", onclick: route }, "Try again"));
}

// -- application detail -----------------------------------------------------------------------

const NODE_W = 190, NODE_H = 46, COL_GAP = 70, ROW_GAP = 12;

function layoutTree(app, nodes) {
  const root = { kind: "Application", name: app.metadata.name, uid: "app", health: app.status?.health, status: syncOf(app), children: [] };
  const byUid = new Map(nodes.filter((n) => n.uid).map((n) => [n.uid, { ...n, children: [] }]));
  const top = [];
  for (const n of nodes) {
    const node = n.uid ? byUid.get(n.uid) : { ...n, children: [] };
    const parent = n.parentRefs?.length ? byUid.get(n.parentRefs[0].uid) : null;
    (parent ? parent.children : top).push(node);
  }
  root.children = top;
  let row = 0;
  const placed = [];
  const place = (node, depth) => {
    node.x = 10 + depth * (NODE_W + COL_GAP);
    if (!node.children.length) { node.y = 10 + row * (NODE_H + ROW_GAP); row += 1; }
    else {
      node.children.forEach((c) => place(c, depth + 1));
      node.y = (node.children[0].y + node.children[node.children.length - 1].y) / 2;
    }
    placed.push(node);
  };
  place(root, 0);
  return { root, placed, height: Math.max(row, 1) * (NODE_H + ROW_GAP) + 20 };
}

const HEALTH_ICON = { Healthy: "♥", Progressing: "◔", Degraded: "✖", Missing: "?", Suspended: "❚❚", Unknown: "?" };
const HEALTH_COLOUR = { Healthy: "var(--green)", Progressing: "var(--cyan)", Degraded: "var(--red)", Missing: "var(--yellow)", Suspended: "var(--magenta)" };

function svgEl(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v); else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

function treeSvg(app, nodes, onSelect, selected) {
  const { placed, height } = layoutTree(app, nodes);
  const depth = Math.max(...placed.map((n) => n.x)) + NODE_W + 20;
  const svg = svgEl("svg", { class: "tree", width: depth, height, role: "tree", "aria-label": "Resource tree" });
  for (const n of placed) for (const c of n.children) {
    const x1 = n.x + NODE_W, y1 = n.y + NODE_H / 2, x2 = c.x, y2 = c.y + NODE_H / 2, mx = (x1 + x2) / 2;
    svg.append(svgEl("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  }
  for (const n of placed) {
    const health = n.health?.status || "";
    const key = `${n.kind}/${n.namespace || ""}/${n.name}`;
    const g = svgEl("g", {
      class: `node${selected === key ? " selected" : ""}`, transform: `translate(${n.x},${n.y})`, tabindex: "0", role: "treeitem",
      "data-kind": n.kind, "data-name": n.name, "aria-label": `${n.kind} ${n.name} ${health} ${n.status || ""}`,
      onclick: () => onSelect(n, key),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(n, key); } },
    },
    svgEl("rect", { width: NODE_W, height: NODE_H }),
    svgEl("text", { x: 10, y: 17, class: "kind" }, n.kind),
    svgEl("text", { x: 10, y: 35 }, n.name.length > 24 ? n.name.slice(0, 23) + "…" : n.name));
    g.append(svgEl("title", {}, `${n.kind} ${n.namespace ? n.namespace + "/" : ""}${n.name}\nhealth: ${health || "-"}${n.status ? "\nsync: " + n.status : ""}${n.health?.message ? "\n" + n.health.message : ""}`));
    if (health) g.append(svgEl("text", { x: NODE_W - 34, y: 18, style: `fill: ${HEALTH_COLOUR[health] || "var(--grey)"}`, "font-size": "13", "data-health": health }, HEALTH_ICON[health] || "?"));
    if (n.status) g.append(svgEl("text", { x: NODE_W - 18, y: 18, style: `fill: ${n.status === "Synced" ? "var(--green)" : "var(--yellow)"}`, "font-size": "13", "data-sync": n.status }, n.status === "Synced" ? "✔" : "⟳"));
    svg.append(g);
  }
  return svg;
}

async function appPage(name) {
  let app = state.apps.get(name);
  try { app = await api("GET", `/api/v1/applications/${enc(name)}`); }
  catch (ex) {
    main.replaceChildren(ex.status === 404
      ? h("div", { class: "card empty" }, h("h2", {}, `Application “${name}” not found`), h("a", { href: "#/apps" }, "Back to applications"))
      : errorState("Could not load the application", ex));
    return {};
  }
  let nodes = [];
  let managed = [];
  let selected = null;
  let panelTab = "live";
  const summary = h("div", { class: "summary" });
  const treeWrap = h("div", { class: "tree-wrap" });
  const panel = h("aside", { class: "panel", hidden: true, "aria-live": "polite" });
  const layout = h("div", { class: "layout" }, treeWrap, panel);
  const extra = h("div");
  const title = h("h1", {}, app.metadata.name, " ", h("span", { class: "live off" }, "live"));
  const syncBtn = h("button", { class: "primary", type: "button", onclick: () => openSync() }, "Sync");
  const diffBtn = h("button", { type: "button", onclick: () => openDiff() }, "App diff");
  const refreshBtn = h("button", { type: "button", onclick: async () => { await act("POST", `/refresh?type=normal`, undefined, "Refresh requested"); } }, "Refresh");
  const deleteBtn = h("button", { class: "danger", type: "button", onclick: async () => {
    if (!confirm(`Delete application ${name} and its resources?`)) return;
    await act("DELETE", "?cascade=true", undefined, "Deleting"); location.hash = "#/apps";
  } }, "Delete");

  async function act(method, suffix, body, done) {
    try { await api(method, `/api/v1/applications/${enc(name)}${suffix}`, body); toast(done); }
    catch (ex) { toast(ex.message, true); throw ex; }
  }

  function drawSummary() {
    const op = app.status?.operationState;
    summary.replaceChildren(
      h("div", {}, h("b", {}, "Health"), badge(healthOf(app))),
      h("div", {}, h("b", {}, "Sync"), badge(syncOf(app)), " ", h("span", { class: "muted" }, (app.status?.sync?.revision || "").slice(0, 7))),
      h("div", {}, h("b", {}, "Last sync"), op ? badge(op.phase) : h("span", { class: "muted" }, "never"), " ", h("span", { class: "muted" }, op?.finishedAt || "")),
      h("div", {}, h("b", {}, "Project"), app.spec?.project || "default"),
      h("div", {}, h("b", {}, "Destination"), `${app.spec?.destination?.namespace || ""}`),
      h("div", {}, h("b", {}, "Source"), `${app.spec?.source?.repoURL || ""} ${app.spec?.source?.path || ""}@${app.spec?.source?.targetRevision || "HEAD"}`),
      h("div", {}, h("b", {}, "Sync policy"), app.spec?.syncPolicy?.automated ? "Automated" : "Manual"));
  }

  function drawTree() {
    if (!nodes.length && !(app.status?.resources || []).length) {
      treeWrap.replaceChildren(h("div", { class: "empty" }, h("p", {}, app.status ? "This application has no resources yet." : "Waiting for the controller to compare this application with Git…")));
      return;
    }
    treeWrap.replaceChildren(treeSvg(app, nodes, selectNode, selected));
  }

  function drawExtra() {
    const conds = app.status?.conditions || [];
    const op = app.status?.operationState;
    const history = [...(app.status?.history || [])].reverse();
    extra.replaceChildren(
      h("h2", {}, "Conditions"),
      conds.length ? h("ul", { id: "conditions" }, ...conds.map((c) => h("li", {}, h("b", {}, c.type), ": ", c.message))) : h("p", { class: "muted" }, "No conditions: nothing is wrong."),
      h("h2", {}, "Last operation"),
      op ? h("div", {}, h("p", {}, badge(op.phase), " ", op.message || "", h("span", { class: "muted" }, ` (${op.startedAt || ""} → ${op.finishedAt || ""})`)),
        h("table", { class: "list", id: "op-results" }, h("thead", {}, h("tr", {}, ["Kind", "Name", "Phase", "Result", "Message"].map((c) => h("th", {}, c)))),
          h("tbody", {}, ...(op.syncResult?.resources || []).map((r) => h("tr", {}, h("td", {}, r.kind), h("td", {}, r.name), h("td", {}, r.syncPhase || ""), h("td", {}, badge(r.status)), h("td", {}, r.message || ""))))))
        : h("p", { class: "muted" }, "No sync has run yet."),
      h("h2", {}, "History"),
      history.length ? h("table", { class: "list", id: "history" }, h("thead", {}, h("tr", {}, ["ID", "Deployed", "Revision", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, ...history.map((e) => h("tr", {}, h("td", {}, e.id), h("td", {}, e.deployedAt), h("td", {}, h("code", {}, (e.revision || "").slice(0, 10))),
          h("td", {}, h("button", { type: "button", onclick: async () => {
            if (!confirm(`Roll back ${name} to deploy ${e.id}?`)) return;
            await act("POST", "/rollback", { id: e.id }, `Rollback to ${e.id} requested`);
          } }, "Rollback"))))))
        : h("p", { class: "muted" }, "Nothing deployed yet."));
  }

  async function loadTree() {
    // The tree comes from the cache and is quick; managed resources need server dry runs,
    // so the tree is drawn first and the panel catches up.
    try {
      nodes = (await api("GET", `/api/v1/applications/${enc(name)}/resource-tree`)).nodes;
    } catch (ex) { treeWrap.replaceChildren(errorState("Could not load the resource tree", ex)); return; }
    drawTree();
    try {
      managed = (await api("GET", `/api/v1/applications/${enc(name)}/managed-resources`)).items;
    } catch (ex) { toast(`Could not compare with Git: ${ex.message}`, true); }
    if (selected && !panel.hidden) showPanel();
  }

  let selectedNode = null;
  function selectNode(n, key) {
    selected = key; selectedNode = n; panel.hidden = false;
    layout.classList.add("with-panel");
    drawTree(); showPanel();
  }

  async function showPanel() {
    const n = selectedNode;
    if (!n) return;
    const m = managed.find((r) => r.kind === n.kind && r.name === n.name && (r.namespace || "") === (n.namespace || ""));
    const content = h("div");
    const tabs = h("div", { class: "tabs", role: "tablist" }, ...["live", "desired", "diff", "events"].map((t) => h("button", {
      type: "button", role: "tab", "aria-selected": String(t === panelTab), "data-tab": t,
      onclick: () => { panelTab = t; showPanel(); },
    }, t === "live" ? "Live" : t === "desired" ? "Desired" : t === "diff" ? "Diff" : "Events")));
    panel.replaceChildren(
      h("div", { class: "toolbar" }, h("h2", { class: "grow", style: "margin:0" }, `${n.kind} ${n.name}`),
        h("button", { type: "button", "aria-label": "Close", onclick: () => { panel.hidden = true; selected = null; layout.classList.remove("with-panel"); drawTree(); } }, "✕")),
      h("p", {}, n.health?.status ? badge(n.health.status) : "", " ", n.status ? badge(n.status) : "", " ", h("span", { class: "muted" }, n.health?.message || "")),
      tabs, content);
    if (n.kind === "Application") { content.append(yamlBlock({ spec: app.spec, status: { sync: app.status?.sync, health: app.status?.health } })); return; }
    if (panelTab === "live") {
      if (m) content.append(yamlBlock(m.liveState));
      else {
        try {
          const r = await api("GET", `/api/v1/applications/${enc(name)}/resource?group=${enc(n.group || "")}&kind=${enc(n.kind)}&namespace=${enc(n.namespace || "")}&resourceName=${enc(n.name)}`);
          content.append(yamlBlock(r.manifest));
        } catch (ex) { content.append(h("p", { class: "error" }, ex.message)); }
      }
    } else if (panelTab === "desired") {
      content.append(m ? yamlBlock(m.targetState) : h("p", { class: "muted" }, "Not managed from Git: created by its owner."));
    } else if (panelTab === "diff") {
      content.append(m ? diffView(m.diff) : h("p", { class: "muted" }, "Not managed from Git: nothing to compare."));
    } else {
      try {
        const ev = (await api("GET", `/api/v1/applications/${enc(name)}/events`)).items.filter((e) => e.involvedObject?.name === n.name && e.involvedObject?.kind === n.kind);
        content.append(ev.length ? h("table", { class: "list" }, h("tbody", {}, ...ev.map((e) => h("tr", {}, h("td", {}, e.type), h("td", {}, e.reason), h("td", {}, e.message), h("td", { class: "wide muted" }, e.lastTimestamp || "")))))
          : h("p", { class: "muted" }, "No events for this resource."));
      } catch (ex) { content.append(h("p", { class: "error" }, ex.message)); }
    }
  }

  function openDiff() {
    const differing = managed.filter((m) => m.diff);
    const dlg = h("dialog", { id: "diff-dialog", "aria-label": "Differences", style: "max-width:1100px" },
      h("h2", {}, `Differences (${differing.length})`),
      differing.length ? differing.map((m) => h("div", {}, h("h3", {}, `${m.kind} ${m.namespace ? m.namespace + "/" : ""}${m.name}`), diffView(m.diff)))
        : h("p", {}, "Live state equals Git."),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => dlg.close() }, "Close")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  function openSync() {
    const opt = (id, label, checked = false) => h("label", {}, h("input", { type: "checkbox", id, checked }), " ", label);
    const resources = managed.map((m) => h("label", {}, h("input", { type: "checkbox", class: "res-pick", checked: true, "data-group": m.group, "data-kind": m.kind, "data-name": m.name, "data-namespace": m.namespace }), ` ${m.kind}/${m.name} `, badge(m.status)));
    const dlg = h("dialog", { id: "sync-dialog", "aria-label": "Synchronize" },
      h("h2", {}, `Sync ${name}`),
      opt("opt-prune", "Prune (delete resources gone from Git)"),
      opt("opt-dry-run", "Dry run (change nothing)"),
      opt("opt-out-of-sync-only", "Apply out-of-sync resources only"),
      h("p", { class: "muted" }, "Resources"),
      h("div", { class: "res" }, resources.length ? resources : h("p", { class: "muted" }, "No resources yet")),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
        h("button", { class: "primary", type: "button", id: "sync-confirm", onclick: async () => {
          const picks = [...dlg.querySelectorAll(".res-pick")];
          const chosen = picks.filter((p) => p.checked);
          const body = {
            prune: dlg.querySelector("#opt-prune").checked,
            dryRun: dlg.querySelector("#opt-dry-run").checked,
            syncOptions: dlg.querySelector("#opt-out-of-sync-only").checked ? ["ApplyOutOfSyncOnly=true"] : [],
            resources: chosen.length === picks.length ? [] : chosen.map((p) => ({ group: p.dataset.group, kind: p.dataset.kind, name: p.dataset.name, namespace: p.dataset.namespace })),
          };
          try { await act("POST", "/sync", body, "Sync started"); dlg.close(); } catch { /* toast shown */ }
        } }, "Synchronize")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector("#opt-prune").focus();
  }

  main.replaceChildren(
    h("p", {}, h("a", { href: "#/apps" }, "← Applications")),
    title, h("div", { class: "toolbar" }, syncBtn, diffBtn, refreshBtn, h("span", { class: "grow" }), deleteBtn),
    summary, h("h2", {}, "Resource tree"), layout, extra);
  if (!state.user?.canSync) { syncBtn.disabled = true; deleteBtn.disabled = true; syncBtn.title = "Your role cannot sync"; }
  drawSummary(); drawExtra(); drawTree();
  await loadTree();
  if (state.stream?.readyState === EventSource.OPEN) title.querySelector(".live")?.classList.remove("off");

  let pending = null;
  return {
    onApp(type, changed) {
      if (changed.metadata.name !== name) return;
      if (type === "DELETED") { main.replaceChildren(h("div", { class: "card empty" }, h("h2", {}, `${name} was deleted`), h("a", { href: "#/apps" }, "Back to applications"))); return; }
      app = changed;
      drawSummary(); drawExtra();
      clearTimeout(pending);
      pending = setTimeout(loadTree, 150);
    },
  };
}

// -- router -----------------------------------------------------------------------------------

async function whoami() {
  try { state.user = await api("GET", "/api/v1/session/userinfo"); }
  catch { state.user = null; }
  document.getElementById("nav").hidden = !state.user;
  document.getElementById("whoami").textContent = state.user ? state.user.username : "";
  if (state.user) connectStream();
  return state.user;
}

async function route() {
  const hash = location.hash || "#/apps";
  if (!state.user && !(await whoami()) && hash !== "#/login") { location.hash = "#/login"; return; }
  state.view = null;
  if (hash === "#/login") state.view = loginPage();
  else if (hash.startsWith("#/apps/")) state.view = await appPage(decodeURIComponent(hash.slice(7)));
  else state.view = await appsPage();
  main.focus({ preventScroll: true });
}

document.getElementById("logout").addEventListener("click", async () => {
  try { await api("DELETE", "/api/v1/session"); } catch { /* already gone */ }
  state.user = null; state.stream?.close(); state.stream = null;
  document.getElementById("nav").hidden = true;
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
