// labctl web console: live parts of a page arrive by server push (Server-Sent Events).
// Each message is JSON: {"html": {elementId: html}, "nodes": {...}, "links": {...}}.
"use strict";
window.labctlLoadedAt = Date.now();  // a reload would reset it: tests check it does not
window.labctlUpdates = 0;

function applyUpdate(data) {
  const status = document.getElementById("live-status");
  if (data.error) {
    if (status) { status.textContent = "error: " + data.error; status.className = "live-status error"; }
    return;
  }
  for (const [id, html] of Object.entries(data.html || {})) {
    const element = document.getElementById(id);
    if (element) element.innerHTML = html;
  }
  if (data.nodes) colourNodes(data.nodes);
  if (data.links) colourLinks(data.links);
  window.labctlUpdates += 1;
  document.body.dataset.updates = String(window.labctlUpdates);
  if (status) {
    status.textContent = "live #" + data.sequence;
    status.className = "live-status ok";
  }
}

function colourNodes(nodes) {
  for (const [name, node] of Object.entries(nodes)) {
    const group = document.getElementById("node-" + name);
    if (!group) continue;
    group.classList.remove("running", "paused", "exited", "missing", "created");
    group.classList.add(node.state);
    group.dataset.state = node.state;
    let title = group.querySelector("title");
    if (title) title.textContent = name + ": " + node.state + (node.vpn ? " (" + node.vpn + ")" : "");
  }
}

function colourLinks(links) {
  for (const [name, link] of Object.entries(links)) {
    const busy = link.packets_per_second > 0;
    for (const element of document.querySelectorAll(".link-" + CSS.escape(name))) {
      element.classList.toggle("busy", busy);
      element.dataset.bytes = String(link.rx_bytes);
    }
  }
}

function clickableTopology() {
  const topology = document.getElementById("topology");
  if (!topology) return;
  const lab = topology.dataset.lab;
  for (const group of topology.querySelectorAll("g.labnode")) {
    const name = group.id.replace(/^node-/, "");
    group.style.cursor = "pointer";
    group.addEventListener("click", () => { window.location.href = "/labs/" + lab + "/nodes/" + name; });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  clickableTopology();
  const url = document.body.dataset.stream;
  if (!url) return;
  const source = new EventSource(url);
  source.onmessage = (event) => applyUpdate(JSON.parse(event.data));
  source.onerror = () => {
    const status = document.getElementById("live-status");
    if (status) { status.textContent = "reconnecting"; status.className = "live-status error"; }
  };
  window.addEventListener("pagehide", () => source.close());
});
