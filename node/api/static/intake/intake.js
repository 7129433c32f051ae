// The intake page's behaviour: choose files, hash them here (hashing.js), show what will be
// sent, send only the hashes as JSON; check or withdraw a case; quick exit.

import { decodeImage, drawThumbnail, drawVideoThumbnail, hashesOf, kindOf } from "./hashing.js";

const strings = JSON.parse(document.getElementById("strings").textContent);
const csrf = document.querySelector("meta[name=csrf]").content;

function t(key, values = {}) {
  return (strings[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function quickExit(event) {
  event.preventDefault();
  document.body.hidden = true;
  window.location.replace(event.currentTarget.href);
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new Error(t("err_network"));
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const code = answer.error?.code;
    const key = { CSRF: "err_expired", RATE_LIMITED: "err_limited", NO_CASE: "err_access",
                  CASE_LOCKED: "err_locked",
                  TOO_MANY_HASHES: "err_too_many" }[code] || "err_other";
    throw new Error(t(key, { max: document.body.dataset.maxHashes }));
  }
  return answer;
}

function formatSize(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

// ---- choosing and hashing files -------------------------------------------------------

const entries = [];
let queue = Promise.resolve();
const message = () => document.getElementById("message");

function renderSummary() {
  const ready = entries.filter((entry) => entry.hashes);
  const hashing = entries.some((entry) => !entry.hashes);
  const count = ready.reduce((sum, entry) => sum + entry.hashes.length, 0);
  const max = Number(document.body.dataset.maxHashes);
  document.getElementById("none-chosen").hidden = entries.length > 0;
  document.getElementById("confirm").hidden = ready.length === 0;
  document.getElementById("send-summary").textContent =
    t(ready.length === 1 ? "send_summary_one" : "send_summary", { hashes: count, files: ready.length });
  document.getElementById("hash-values").replaceChildren(...ready.flatMap((entry) =>
    entry.hashes.map((hash) => {
      const line = document.createElement("li");
      line.textContent = `${hash.type.toUpperCase()} ${hash.value}`;
      return line;
    })));
  document.getElementById("send").disabled = hashing || count === 0 || count > max;
  if (count > max) message().textContent = t("err_too_many", { max });
  else if (message().dataset.kind === "limit") message().textContent = "";
  message().dataset.kind = count > max ? "limit" : "";
}

function addEntry(file) {
  const kind = kindOf(file);
  if (!kind) {
    message().textContent = t("err_not_media", { name: file.name });
    return;
  }
  const entry = { file, kind, hashes: null, cancelled: false };
  const item = document.createElement("li");
  item.className = "file";
  const picture = document.createElement("canvas");
  picture.className = "thumb";
  picture.setAttribute("role", "img");
  picture.setAttribute("aria-label", file.name);
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = `${file.name} (${formatSize(file.size)})`;
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `${t("reading")} ${file.name}`);
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = t("reading");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = t("remove");
  remove.setAttribute("aria-label", `${t("remove")} ${file.name}`);
  remove.addEventListener("click", () => {
    entry.cancelled = true;
    entries.splice(entries.indexOf(entry), 1);
    item.remove();
    renderSummary();
    document.getElementById("files").focus();
  });
  const text = document.createElement("div");
  text.className = "text";
  text.append(name, progress, state);
  item.append(picture, text, remove);
  document.getElementById("file-list").append(item);
  entries.push(entry);
  renderSummary();

  queue = queue.then(async () => {
    if (entry.cancelled) return;
    let bitmap = null;
    try {
      if (kind === "image") {
        bitmap = await decodeImage(file);
        drawThumbnail(bitmap, picture);
      } else if (!(await drawVideoThumbnail(file, picture))) {
        const tile = document.createElement("div");
        tile.className = "thumb";
        tile.textContent = t("video");
        tile.setAttribute("role", "img");
        tile.setAttribute("aria-label", file.name);
        picture.replaceWith(tile);
      }
      entry.hashes = await hashesOf(file, bitmap, (fraction) => { progress.value = fraction; },
                                    () => entry.cancelled);
      if (entry.hashes) state.textContent = t("ready");
    } catch {
      state.textContent = "";
      message().textContent = t("err_image", { name: file.name });
      remove.click();
    } finally {
      bitmap?.close();
      renderSummary();
    }
  });
}

async function send() {
  const button = document.getElementById("send");
  button.disabled = true;
  button.textContent = t("sending");
  message().textContent = "";
  try {
    const items = entries.filter((entry) => entry.hashes).map((entry) => ({ hashes: entry.hashes }));
    const opened = await post("/api/cases", { items });
    entries.length = 0;
    document.getElementById("file-list").replaceChildren();
    document.getElementById("choose-step").hidden = true;
    document.getElementById("reference").textContent = opened.reference;
    document.getElementById("pin").textContent = opened.pin;
    // shown once: switching language now would reload the page and lose them
    document.querySelector("nav.langs").hidden = true;
    const done = document.getElementById("done");
    done.hidden = false;
    done.focus();
  } catch (error) {
    message().textContent = error.message;
    button.textContent = t("send");
    renderSummary();
  }
}

function setUpNewCase() {
  const input = document.getElementById("files");
  input.addEventListener("change", () => {
    message().textContent = "";
    for (const file of input.files) addEntry(file);
    input.value = "";
  });
  document.getElementById("send").addEventListener("click", send);
  renderSummary();
}

// ---- status and withdrawal -------------------------------------------------------------

function setUpCaseForm(mode) {
  const form = document.getElementById("case-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message().textContent = "";
    const words = document.getElementById("words");
    document.getElementById("result").hidden = true;
    const pin = document.getElementById("pin");
    try {
      const answer = await post(mode === "withdraw" ? "/api/withdraw" : "/api/status", {
        reference: document.getElementById("reference").value,
        pin: pin.value,
        lang: document.documentElement.lang,
      });
      const lines = mode === "withdraw" ? [t("withdrawn"), ...answer.words] : answer.words;
      words.replaceChildren(...lines.map((line) => {
        const item = document.createElement("li");
        item.textContent = line;
        return item;
      }));
      document.getElementById("result").hidden = false;
      document.getElementById("result").dataset.state = answer.status.state;
    } catch (error) {
      message().textContent = error.message;
    } finally {
      pin.value = "";
    }
  });
}

document.getElementById("quick-exit").addEventListener("click", quickExit);
const mode = document.body.dataset.mode;
if (mode === "new") setUpNewCase();
else setUpCaseForm(mode);
