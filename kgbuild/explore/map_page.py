"""The entity map as one self-contained HTML page (vis-network, inlined).

The page draws with vis-network 9 (the standalone build pyvis ships, read from the installed ``pyvis`` package:
no CDN, nothing fetched), physics off (``entity_map`` computed the positions), and adds in its own script: colour
by community or by type (one palette for types with the other views and the Neo4j Browser style), a legend
(clicking a community zooms to it), a search box (it reveals an entity that is not drawn yet), community titles
drawn over their clusters, and click-to-expand (a clicked node shows the neighbours the page embeds for it).

The data reaches the page as JSON in a ``<script type="application/json">`` element with ``<``, ``>`` and ``&``
escaped, read with ``JSON.parse``; names are shown through ``textContent`` and vis-network's text tooltips,
never as HTML. ``window.kgbuildView`` exposes the network, its DataSets and the page's actions (the tests drive
the page through it).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from kgbuild.errors import KgbuildError
from kgbuild.explore.entity_map import EntityMap, community_at, relation_text
from kgbuild.explore.graph_html import EXTERNAL_REFERENCE, _text, _write_atomic, type_colors

VIS_VERSION = "9.1.2"
# community colours: Tableau 20, strong shades first
COMMUNITY_PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf",
    "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#bcbd22",
)
OTHER_COLOUR = "#c9c9c9"


def vis_network_assets() -> tuple[str, str]:
    """vis-network's standalone script and its style, from the installed pyvis."""
    try:
        lib = resources.files("pyvis") / "lib" / f"vis-{VIS_VERSION}"
        return (lib / "vis-network.min.js").read_text(encoding="utf-8"), (lib / "vis-network.css").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:  # pragma: no cover - a declared dependency
        raise KgbuildError(f"the graph view needs pyvis {VIS_VERSION!r} assets (pip install pyvis): {exc}") from exc


def page_data(view: EntityMap) -> dict[str, Any]:
    level_ids = [c["id"] for c in view.communities]
    position = {cid: i for i, cid in enumerate(level_ids)}
    names = [n.name for n in view.nodes]
    nodes = []
    for i, n in enumerate(view.nodes):
        community = community_at(n, set(level_ids))
        x, y = view.positions.get(i, (None, None))
        nodes.append([_text(n.name, 80), n.type, n.mentions, n.degree, position.get(community, -1) if community else -1,
                      1 if i in view.labelled else 0, x, y, _text(n.key, 120)])
    top = max((e.weight for e in view.edges), default=1.0) or 1.0
    edges = []
    for e in view.edges:
        heads = sum(1 for label in e.labels if not label.endswith(" ←"))
        arrows = "" if not e.labels else "to" if heads == len(e.labels) else "from" if heads == 0 else "to, from"
        lines = [relation_text(e, names)] if e.labels else []
        if e.shared:
            lines.append(f"co-mentioned in {e.shared} chunk{'s' if e.shared != 1 else ''} (weight {e.weight:.3g})")
        label = ", ".join(sorted({lab.removesuffix(" ←") for lab in e.labels}))
        edges.append([e.head, e.tail, _text("\n".join(lines), 400), 1 if e.labels else 0, round(e.weight / top, 4), arrows,
                      _text(label, 40)])
    return {
        "nodes": nodes, "edges": edges, "drawn": view.drawn, "drawnEdges": view.drawn_edges,
        "neighbours": {str(k): v for k, v in sorted(view.neighbours.items())},
        "communities": [{"id": c["id"], "title": _text(c["title"], 80), "size": c["size"]} for c in view.communities],
        "clusters": len({nodes[i][4] for i in range(view.drawn)} - {-1}),
        "level": view.level, "center": view.center, "colourBy": view.colour_by, "note": view.note,
        "typeColours": type_colors(n.type for n in view.nodes), "palette": list(COMMUNITY_PALETTE), "other": OTHER_COLOUR,
        "total": view.total_entities,
    }


def _json_for_script(value: Any) -> str:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_map(view: EntityMap, out_file: Path) -> None:
    script, style = vis_network_assets()
    title = "kgbuild graph" + (f" around {view.center_key}" if view.center_key else "")
    page = (_PAGE.replace("@@TITLE@@", _html_escape(title))
            .replace("@@VIS_CSS@@", style)
            .replace("@@DATA@@", _json_for_script(page_data(view)))
            .replace("@@APP@@", _APP))
    page = page.replace("@@VIS_JS@@", script.replace("</script", "<\\/script"))
    found = EXTERNAL_REFERENCE.search(page)
    if found:  # a new vis-network build: refuse to write a page that fetches
        raise KgbuildError(f"the graph view page would load {found.group(0)!r} from the network")
    _write_atomic(Path(out_file), page)


def _html_escape(text: str) -> str:
    import html

    return html.escape(text)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@@TITLE@@</title>
<style>@@VIS_CSS@@</style>
<style>
  html, body { margin: 0; height: 100%; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }
  #kg-network { position: absolute; inset: 0 0 0 330px; background: #fbfbfa; }
  .kg-panel { position: fixed; background: rgba(255,255,255,.94); border: 1px solid #d8d8d8; border-radius: 6px;
              box-shadow: 0 1px 4px rgba(0,0,0,.08); padding: 8px 10px; }
  #kg-side { top: 10px; left: 10px; width: 300px; max-height: calc(100vh - 40px); overflow: auto; }
  #kg-side h1 { font-size: 14px; margin: 0 0 4px; }
  #kg-counts, #kg-note, #kg-found { color: #555; }
  #kg-note { margin-top: 4px; font-style: italic; }
  #kg-search { width: 100%; box-sizing: border-box; margin: 6px 0 2px; padding: 4px 6px; font: inherit; }
  #kg-colour { margin: 6px 0; }
  #kg-legend { margin-top: 6px; }
  .kg-item { display: flex; align-items: center; gap: 6px; padding: 1px 2px; cursor: pointer; border-radius: 3px; }
  .kg-item:hover { background: #eef2f7; }
  .kg-swatch { flex: 0 0 11px; height: 11px; border-radius: 6px; }
  .kg-line { flex: 0 0 18px; height: 0; border-top: 2px solid #555; }
  .kg-size { color: #888; margin-left: auto; }
  #kg-info { bottom: 10px; left: 10px; max-width: 420px; display: none; white-space: pre-wrap; }
</style>
</head>
<body>
<div id="kg-network"></div>
<div id="kg-side" class="kg-panel">
  <h1>@@TITLE@@</h1>
  <div id="kg-counts"></div>
  <input id="kg-search" type="search" placeholder="Find an entity…" list="kg-names" autocomplete="off">
  <datalist id="kg-names"></datalist>
  <div id="kg-found"></div>
  <div id="kg-colour">Colour by
    <label><input type="radio" name="kg-colour" value="community"> community</label>
    <label><input type="radio" name="kg-colour" value="type"> type</label>
  </div>
  <div id="kg-legend"></div>
  <div id="kg-note"></div>
</div>
<div id="kg-info" class="kg-panel"></div>
<script>@@VIS_JS@@</script>
<script type="application/json" id="kg-data">@@DATA@@</script>
<script>@@APP@@</script>
</body>
</html>
"""

_APP = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("kg-data").textContent);
  var N = D.nodes, E = D.edges, mode = D.colourBy;
  var hasCommunities = D.communities.length > 0;
  if (!hasCommunities) { mode = "type"; }
  var nodes = new vis.DataSet(), edges = new vis.DataSet();
  var expanded = {};

  function colourOf(i) {
    if (mode === "type") { return D.typeColours[N[i][1]] || D.other; }
    var c = N[i][4];
    return c >= 0 && c < D.palette.length ? D.palette[c] : D.other;
  }
  function communityTitle(i) { var c = N[i][4]; return c >= 0 ? D.communities[c].title : ""; }
  function tooltip(i) {
    var n = N[i], lines = [n[0], "type: " + n[1], "key: " + n[8], "mentions: " + n[2]];
    if (n[4] >= 0) { lines.push("community: " + communityTitle(i)); }
    var more = hidden(i).length;
    if (more) { lines.push("click to show " + more + " more neighbour" + (more > 1 ? "s" : "")); }
    return lines.join("\n");
  }
  function colourItem(i) {
    var c = colourOf(i);
    return { background: c, border: i === D.center ? "#111111" : c, highlight: { background: c, border: "#111111" } };
  }
  function nodeItem(i, x, y, labelled) {
    var n = N[i];
    return { id: i, label: labelled ? n[0] : undefined, title: tooltip(i), color: colourItem(i), value: Math.max(1, n[2]),
             x: x, y: y, borderWidth: i === D.center ? 4 : 1 };
  }
  function edgeItem(j) {
    // an edge between two communities is drawn fainter: hubs named everywhere would hide the clusters
    var e = E[j], relation = e[3] === 1, across = D.center === null && N[e[0]][4] !== N[e[1]][4], fade = across ? 0.4 : 1;
    return { id: j, from: e[0], to: e[1], title: e[2], arrows: e[5] || undefined,
             label: relation && D.center !== null ? e[6] : undefined,
             width: relation ? 1.6 : 0.6 + 3 * e[4],
             color: relation ? { color: "#4a4a4a", opacity: 0.9 * fade } : { color: "#9aa0a8", opacity: 0.45 * fade },
             dashes: false };
  }
  function other(j, i) { return E[j][0] === i ? E[j][1] : E[j][0]; }
  function hidden(i) {
    return (D.neighbours[i] || []).map(function (j) { return other(j, i); }).filter(function (o) { return !nodes.get(o); });
  }

  var first = [];
  for (var i = 0; i < D.drawn; i++) { first.push(nodeItem(i, N[i][6], N[i][7], N[i][5] === 1)); }
  nodes.add(first);
  var firstEdges = [];
  for (var j = 0; j < D.drawnEdges; j++) { firstEdges.push(edgeItem(j)); }
  edges.add(firstEdges);

  var container = document.getElementById("kg-network");
  var network = new vis.Network(container, { nodes: nodes, edges: edges }, {
    physics: false,
    layout: { improvedLayout: false },
    nodes: { shape: "dot", scaling: { min: 6, max: 22, label: { enabled: false } },
             font: { size: 22, face: "system-ui, sans-serif", color: "#1d1d1d", strokeWidth: 4, strokeColor: "#ffffff" } },
    edges: { smooth: false, selectionWidth: 1.5, arrows: { to: { scaleFactor: 0.45 }, from: { scaleFactor: 0.45 } },
             font: { size: 10, align: "middle", color: "#444444", strokeWidth: 3 } },
    interaction: { hover: true, tooltipDelay: 120, hideEdgesOnDrag: true, multiselect: false }
  });

  function updateCounts() {
    document.getElementById("kg-counts").textContent = nodes.length + " nodes, " + edges.length + " edges drawn" +
      (D.level !== null ? " · communities of level " + D.level : "") + " · " + D.total + " entities in the index";
  }

  // click to expand: the neighbours the page holds for the node, in a ring around it
  function addEdgesOf(list) {
    var add = [];
    list.forEach(function (i) {
      (D.neighbours[i] || []).forEach(function (j) {
        if (!edges.get(j) && nodes.get(E[j][0]) && nodes.get(E[j][1])) { add.push(edgeItem(j)); }
      });
    });
    var seen = {};
    edges.add(add.filter(function (e) { if (seen[e.id]) { return false; } seen[e.id] = 1; return true; }));
  }
  function expand(i) {
    var more = hidden(i), at = network.getPositions([i])[i], radius = 90 + 10 * more.length;
    nodes.add(more.map(function (o, k) {
      var a = 2 * Math.PI * k / Math.max(more.length, 1);
      return nodeItem(o, at.x + radius * Math.cos(a), at.y + radius * Math.sin(a), true);
    }));
    expanded[i] = true;
    addEdgesOf([i].concat(more));
    nodes.update([nodeItem(i, at.x, at.y, true)]);
    refreshTooltips(more);
    updateCounts();
    return more.length;
  }
  function refreshTooltips(list) {
    var ids = {};
    list.forEach(function (i) { (D.neighbours[i] || []).forEach(function (j) { ids[other(j, i)] = 1; }); });
    nodes.update(Object.keys(ids).map(Number).filter(function (o) { return nodes.get(o); })
      .map(function (o) { return { id: o, title: tooltip(o) }; }));
  }
  // an entity that is not drawn: next to a drawn neighbour
  function reveal(i) {
    if (nodes.get(i)) { return; }
    var x = 0, y = 0;
    for (var j = 0; j < E.length; j++) {
      if ((E[j][0] === i || E[j][1] === i) && nodes.get(other(j, i))) {
        var p = network.getPositions([other(j, i)])[other(j, i)];
        x = p.x + 60; y = p.y - 60;
        break;
      }
    }
    nodes.add([nodeItem(i, x, y, true)]);
    var touching = [];
    for (var k = 0; k < E.length; k++) {
      if ((E[k][0] === i || E[k][1] === i) && nodes.get(other(k, i)) && !edges.get(k)) { touching.push(edgeItem(k)); }
    }
    edges.add(touching);
    updateCounts();
  }

  function showInfo(i) {
    var box = document.getElementById("kg-info");
    if (i === null || i === undefined) { box.style.display = "none"; return; }
    var lines = [tooltip(i)];
    var rels = (D.neighbours[i] || []).filter(function (j) { return E[j][3] === 1; }).map(function (j) { return E[j][2].split("\n")[0]; });
    if (rels.length) { lines.push("", "relations:"); rels.slice(0, 8).forEach(function (r) { lines.push("  " + r); }); }
    box.textContent = lines.join("\n");
    box.style.display = "block";
  }

  network.on("click", function (params) {
    if (params.nodes.length) { var i = params.nodes[0]; expand(i); showInfo(i); } else { showInfo(null); }
  });

  // search: exact name first, then a name that starts with the text, then one that holds it; drawn nodes first
  function search(text) {
    var q = (text || "").trim().toLowerCase(), found = document.getElementById("kg-found");
    if (!q) { found.textContent = ""; return null; }
    var best = null, bestRank = null;
    for (var i = 0; i < N.length; i++) {
      var name = N[i][0].toLowerCase(), kind = name === q ? 0 : name.indexOf(q) === 0 ? 1 : name.indexOf(q) >= 0 ? 2 : -1;
      if (kind < 0) { continue; }
      var rank = [kind, nodes.get(i) ? 0 : 1, -N[i][3], i];
      if (bestRank === null || compare(rank, bestRank) < 0) { best = i; bestRank = rank; }
    }
    if (best === null) { found.textContent = "no entity named \u201c" + text.trim() + "\u201d on this page"; return null; }
    reveal(best);
    network.selectNodes([best]);
    network.focus(best, { scale: 1.3, animation: false });
    showInfo(best);
    found.textContent = N[best][0] + " (" + N[best][1] + ")";
    return best;
  }
  function compare(a, b) { for (var k = 0; k < a.length; k++) { if (a[k] !== b[k]) { return a[k] < b[k] ? -1 : 1; } } return 0; }
  var box = document.getElementById("kg-search");
  box.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { search(box.value); } });
  box.addEventListener("change", function () { search(box.value); });
  var names = document.getElementById("kg-names"), listed = {};
  N.forEach(function (n) { if (!listed[n[0]]) { listed[n[0]] = 1; var o = document.createElement("option"); o.value = n[0]; names.appendChild(o); } });

  // colours and legend
  function legendItem(colour, text, size, onClick, line) {
    var row = document.createElement("div"), sw = document.createElement("span"), label = document.createElement("span");
    row.className = "kg-item";
    sw.className = line ? "kg-line" : "kg-swatch";
    if (line) { sw.style.borderTopColor = colour; } else { sw.style.background = colour; }
    label.textContent = text;
    row.appendChild(sw); row.appendChild(label);
    if (size !== null) { var s = document.createElement("span"); s.className = "kg-size"; s.textContent = size; row.appendChild(s); }
    if (onClick) { row.addEventListener("click", onClick); } else { row.style.cursor = "default"; }
    return row;
  }
  function drawLegend() {
    var legend = document.getElementById("kg-legend");
    legend.textContent = "";
    if (mode === "community") {
      D.communities.slice(0, Math.max(D.clusters, 1)).forEach(function (c, k) {
        legend.appendChild(legendItem(k < D.palette.length ? D.palette[k] : D.other, c.title, c.size, function () { fitCommunity(k); }, false));
      });
      legend.appendChild(legendItem(D.other, "other communities, or none", null, null, false));
    } else {
      var present = {};
      nodes.forEach(function (n) { present[N[n.id][1]] = (present[N[n.id][1]] || 0) + 1; });
      Object.keys(D.typeColours).filter(function (t) { return present[t]; }).forEach(function (t) {
        legend.appendChild(legendItem(D.typeColours[t], t, present[t], null, false));
      });
    }
    legend.appendChild(legendItem("#4a4a4a", "relation (arrow: its direction)", null, null, true));
    legend.appendChild(legendItem("#b9bec5", "co-mention (width: weight)", null, null, true));
  }
  function fitCommunity(k) {
    var ids = nodes.getIds().filter(function (i) { return N[i][4] === k; });
    if (ids.length) { network.fit({ nodes: ids, animation: false }); }
  }
  function setColour(value) {
    if (value === "community" && !hasCommunities) { return mode; }
    mode = value;
    nodes.update(nodes.getIds().map(function (i) { return { id: i, color: colourItem(i) }; }));
    document.querySelectorAll("input[name=kg-colour]").forEach(function (r) { r.checked = r.value === mode; });
    drawLegend();
    return mode;
  }
  document.querySelectorAll("input[name=kg-colour]").forEach(function (r) {
    r.disabled = r.value === "community" && !hasCommunities;
    r.addEventListener("change", function () { if (r.checked) { setColour(r.value); } });
  });

  // community titles over their clusters
  network.on("afterDrawing", function (ctx) {
    if (!hasCommunities || D.center !== null) { return; }
    var scale = network.getScale(), groups = {};
    var pos = network.getPositions();
    Object.keys(pos).forEach(function (id) {
      var c = N[id][4];
      if (c < 0 || c >= D.clusters) { return; }
      (groups[c] || (groups[c] = [])).push(pos[id]);
    });
    Object.keys(groups).forEach(function (c) {
      // the title sits over the cluster's core: members no further from its centre than most
      var ps = groups[c], x = 0, y = 0;
      ps.forEach(function (p) { x += p.x; y += p.y; });
      x /= ps.length; y /= ps.length;
      var d = ps.map(function (p) { return Math.hypot(p.x - x, p.y - y); }).sort(function (a, b) { return a - b; });
      var reach = 1.5 * d[Math.floor(d.length / 2)] + 1, top = Infinity;
      ps.forEach(function (p) { if (Math.hypot(p.x - x, p.y - y) <= reach) { top = Math.min(top, p.y); } });
      groups[c] = { x: x, top: top };
    });
    ctx.save();
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.lineJoin = "round";
    var size = Math.max(16, Math.min(40, 16 / scale));
    ctx.font = "600 " + size + "px system-ui, sans-serif";
    // kept inside the visible canvas: a title wider than its cluster would be cut at the edges
    var box = container.getBoundingClientRect(), pad = 6 / scale;
    var left = network.DOMtoCanvas({ x: 0, y: 0 }), right = network.DOMtoCanvas({ x: box.width, y: box.height });
    Object.keys(groups).forEach(function (c) {
      var g = groups[c], text = D.communities[c].title, half = ctx.measureText(text).width / 2;
      var x = Math.max(left.x + half + pad, Math.min(right.x - half - pad, g.x));
      var y = Math.max(left.y + size + pad, g.top - 18);
      ctx.lineWidth = size / 3.5;
      ctx.strokeStyle = "rgba(255,255,255,0.95)";
      ctx.strokeText(text, x, y);
      ctx.fillStyle = c < D.palette.length ? D.palette[c] : "#666666";
      ctx.fillText(text, x, y);
    });
    ctx.restore();
  });

  document.getElementById("kg-note").textContent = D.note || "";
  setColour(mode);
  updateCounts();
  network.fit({ animation: false });
  network.moveTo({ scale: network.getScale() * 0.9 });  // room for the cluster titles at the edges
  window.kgbuildView = { network: network, nodes: nodes, edges: edges, data: D, setColour: setColour, search: search,
                         expand: expand, hidden: hidden, mode: function () { return mode; } };
})();
"""
