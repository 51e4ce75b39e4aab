// The setup page: polls the status and drives the import. Relative URLs only (Home Assistant
// ingress serves this page under a path of its own).
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);

function text(id, value) { $(id).textContent = value; }

function show(step) {
  for (const id of ["account-step", "code-step", "found-step"]) $(id).hidden = id !== step;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await answer.json(); } catch (e) { /* not JSON: use the status below */ }
  if (!answer.ok) throw new Error(data.error || "The bridge answered HTTP " + answer.status + ".");
  return data;
}

// One check: a badge, what was found (prefixed with the name checked, for DNS), and the fix.
function findingNode(f, label) {
  const line = document.createElement("div");
  line.className = "finding";
  const badge = document.createElement("span");
  badge.className = "badge " + f.status;
  badge.textContent = f.status;
  line.append(badge, (label ? label + ": " : "") + f.message);
  if (f.advice) {
    const fix = document.createElement("div");
    fix.className = "muted fix";
    fix.textContent = "Fix: " + f.advice;
    line.append(fix);
  }
  return line;
}

function renderStatus(s) {
  text("relays", String(s.relays));
  const file = s.device_file;
  text("devices", s.devices_seen + " seen / " + file.devices + " listed");
  text("device-file", file.error ? "cannot be read: " + file.error
    : file.path ? file.path : "none yet: import from your account below");
  text("mqtt", !s.mqtt.enabled ? "disabled"
    : (s.mqtt.connected ? "connected to " : "not connected to ") + s.mqtt.broker);
  $("certificate").replaceChildren(findingNode(s.certificate));
  $("dns").replaceChildren(...s.dns.map((f) => findingNode(f, f.check.replace(/^dns /, ""))));
  const errors = s.errors.map((e) => {
    const li = document.createElement("li");
    li.textContent = e;
    return li;
  });
  if (errors.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    errors.push(li);
  }
  $("errors").replaceChildren(...errors);
}

async function refresh() {
  try {
    const answer = await fetch("status", { credentials: "same-origin" });
    if (answer.ok) renderStatus(await answer.json());
  } catch (e) { /* the bridge restarting: try again on the next tick */ }
}

function renderFound(summary) {
  const homes = summary.homes.map((home) => {
    const block = document.createElement("div");
    block.className = "home";
    const title = document.createElement("strong");
    title.textContent = home.name + " (" + home.devices.length + " devices, " + home.groups + " rooms/groups)";
    const list = document.createElement("ul");
    for (const d of home.devices) {
      const li = document.createElement("li");
      li.textContent = d;
      list.append(li);
    }
    block.append(title, list);
    return block;
  });
  $("homes").replaceChildren(...homes);
  $("notes").replaceChildren(...summary.notes.map((n) => {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = n;
    return li;
  }));
}

async function busy(button, work) {
  button.disabled = true;
  showError("");
  try { await work(); } catch (e) { showError(e.message); refresh(); } finally { button.disabled = false; }
}

$("account-step").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("send-code"), async () => {
    const answer = await post("code", { email: $("email").value });
    text("code-sent", answer.message);
    show("code-step");
    $("code").focus();
  });
});

$("code-step").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("login"), async () => {
    const summary = await post("login", {
      email: $("email").value, password: $("password").value, code: $("code").value,
    });
    $("password").value = "";
    renderFound(summary);
    show("found-step");
  });
});

$("restart").addEventListener("click", () => { showError(""); show("account-step"); });

$("save").addEventListener("click", () => {
  busy($("save"), async () => {
    const answer = await post("save");
    $("found-step").hidden = true;
    text("saved", answer.message);
    $("saved").hidden = false;
    refresh();
  });
});

refresh();
setInterval(refresh, 5000);
