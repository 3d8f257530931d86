// Beacon's ticket wall: polls the view's JSON (data-api) every data-refresh-seconds and
// updates the four tables in place, keeping the column sort the user picked. Also the
// ticket detail panel, the agent filter's auto-submit and the "sync tickets now" button.
// Everything from the server is written with textContent or attributes, never as markup.
(() => {
  "use strict";

  const root = document.querySelector("[data-wall]");
  if (!root) return;
  const apiUrl = root.getAttribute("data-api");
  const seconds = Math.max(1, Number.parseInt(root.getAttribute("data-refresh-seconds"), 10) || 60);
  const display = root.getAttribute("data-display") === "true";
  const template = root.querySelector("template[data-row-template]");
  const statusLine = root.querySelector("[data-wall-status]");
  const errorBox = root.querySelector("[data-wall-error]");
  const SYNC_POLL_MS = 2000;
  const TONES = ["status-text--danger", "status-text--warning", "status-text--success", "status-text--muted"];
  const BADGES = ["badge--danger", "badge--warning", "badge--info", "badge--success"];
  let busy = false;

  // ---------- small helpers ----------

  function fields(element, name) {
    // Compared as attribute values, never put into a selector: names and ids are data.
    return Array.from(element.querySelectorAll("[data-field]")).filter(
      (found) => found.getAttribute("data-field") === name);
  }

  function setText(element, text) {
    const value = text === null || text === undefined ? "" : String(text);
    if (element && element.textContent !== value) element.textContent = value;
  }

  function setAttribute(element, name, value) {
    if (!element) return;
    if (value === null || value === undefined || value === "") element.removeAttribute(name);
    else if (element.getAttribute(name) !== String(value)) element.setAttribute(name, String(value));
  }

  function setTone(element, base, tone, tones) {
    for (const other of tones) element.classList.remove(other);
    element.classList.add(base);
    if (tone) element.classList.add(tone);
  }

  // ---------- one row ----------

  function fillRow(tr, row) {
    tr.setAttribute("data-ticket", row.id);
    for (const cell of tr.cells) {
      const column = cell.getAttribute("data-column");
      if (column && row.sort) setAttribute(cell, "data-sort-value", row.sort[column]);
    }
    for (const link of fields(tr, "number")) {
      setText(link, row.number);
      if (row.url) {
        setAttribute(link, "href", row.url);
        link.setAttribute("target", "_blank");
        link.setAttribute("rel", "noopener noreferrer");
      } else {
        link.removeAttribute("href");
      }
    }
    for (const subject of fields(tr, "subject")) {
      setText(subject, row.subject);
      setAttribute(subject, "title", row.subject_full);
    }
    for (const name of ["requester", "agent", "updated", "age"]) {
      for (const element of fields(tr, name)) setText(element, row[name]);
    }
    for (const badge of fields(tr, "priority")) {
      setText(badge, row.priority);
      setTone(badge, "badge", row.priority_badge, BADGES);
    }
    for (const sla of fields(tr, "sla_text")) {
      setText(sla, row.sla_text);
      setAttribute(sla, "data-sla", row.sla);
      setTone(sla, "status-text", row.sla_tone, TONES);
    }
    for (const due of fields(tr, "due")) {
      setText(due, row.due);
      due.hidden = !row.due;
    }
    if (!display) {
      setAttribute(tr, "data-subject-full", row.subject_full);
      setAttribute(tr, "data-description", row.description);
      setAttribute(tr, "data-requester-email", row.requester_email);
      setAttribute(tr, "data-company", row.company);
      setAttribute(tr, "data-status", row.status);
    }
  }

  function newRow() {
    const copy = template.content.firstElementChild.cloneNode(true);
    return copy;
  }

  // ---------- sorting, the same rules as the design system's sortable tables ----------

  const collator = new Intl.Collator(document.documentElement.lang || undefined, { numeric: true, sensitivity: "base" });
  const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?$/i;

  function sortKey(cell) {
    if (!cell) return "";
    const value = cell.hasAttribute("data-sort-value") ? cell.getAttribute("data-sort-value") : cell.textContent;
    return value.trim();
  }

  function applySort(table) {
    const header = table.querySelector("th.table__sortable[aria-sort]");
    if (!header) return false;
    const index = Array.from(header.parentElement.cells).indexOf(header);
    const factor = header.getAttribute("aria-sort") === "descending" ? -1 : 1;
    const body = table.tBodies[0];
    const entries = Array.from(body.rows, (row) => ({ row, key: sortKey(row.cells[index]) }));
    const filled = entries.filter((entry) => entry.key !== "");
    const numeric = filled.length > 0 && filled.every((entry) => NUMBER.test(entry.key.replace(/[\s,]/g, "")));
    entries.sort((a, b) => {
      if (a.key === "" || b.key === "") return (a.key === "") - (b.key === "");
      const order = numeric ? Number.parseFloat(a.key) - Number.parseFloat(b.key) : collator.compare(a.key, b.key);
      return order * factor;
    });
    for (const entry of entries) body.appendChild(entry.row);
    return true;
  }

  // ---------- a section and the whole board ----------

  function updateSection(element, section) {
    const table = element.querySelector("[data-section-table]");
    const body = table.tBodies[0];
    const existing = new Map();
    for (const tr of Array.from(body.rows)) existing.set(tr.getAttribute("data-ticket"), tr);
    const wanted = [];
    for (const row of section.rows) {
      const tr = existing.get(row.id) || newRow();
      existing.delete(row.id);
      fillRow(tr, row);
      wanted.push(tr);
    }
    for (const gone of existing.values()) gone.remove();
    // Codex's order (most urgent first), unless the user sorted a column.
    for (const tr of wanted) body.appendChild(tr);
    applySort(table);
    const count = element.querySelector("[data-section-count]");
    setText(count, section.rows.length);
    setAttribute(count, "aria-label", `${section.rows.length} tickets`);
    const rows = element.querySelector("[data-section-rows]");
    const empty = element.querySelector("[data-section-empty]");
    if (rows) rows.hidden = section.rows.length === 0;
    if (empty) empty.hidden = section.rows.length !== 0;
  }

  function updateSync(sync) {
    for (const state of document.querySelectorAll("[data-sync-state]")) {
      setText(state, sync.text);
      state.setAttribute("data-stale", sync.stale ? "true" : "false");
      setAttribute(state, "title", sync.at);
      setTone(state, "status-text", sync.stale ? "status-text--warning" : "status-text--muted", TONES);
    }
  }

  function showError(message) {
    if (!errorBox) return;
    setText(errorBox, message ? `${message} The wall retries by itself.` : "");
    errorBox.hidden = !message;
  }

  function render(board) {
    const sections = new Map();
    for (const element of root.querySelectorAll("[data-section]")) {
      sections.set(element.getAttribute("data-section"), element);
    }
    for (const section of board.sections) {
      const element = sections.get(String(section.number));
      if (element) updateSection(element, section);
    }
    updateSync(board.sync);
    showError("");
    setText(statusLine, `${board.total} active tickets. Updated ${new Date().toLocaleTimeString()}.`);
    root.setAttribute("data-updated", board.generated_at);
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(apiUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body || !Array.isArray(body.sections)) {
        throw new Error((body && body.detail) || `The wall's data answered ${response.status}.`);
      }
      render(body);
    } catch (error) {
      showError(error.message);
    } finally {
      busy = false;
    }
  }

  window.setInterval(() => {
    if (!document.hidden) refresh();
  }, seconds * 1000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });

  if (display) return;

  // ---------- the detail panel ----------

  const dialog = document.getElementById("ticket-detail");

  function detail(name) {
    return Array.from(dialog.querySelectorAll("[data-detail-field]")).filter(
      (found) => found.getAttribute("data-detail-field") === name);
  }

  function openDetail(tr) {
    const text = (selector) => {
      const found = fields(tr, selector)[0];
      return found ? found.textContent : "";
    };
    const values = {
      number: text("number"),
      subject: tr.getAttribute("data-subject-full") || text("subject"),
      requester: text("requester"),
      requester_email: tr.getAttribute("data-requester-email") || "",
      company: tr.getAttribute("data-company") || "",
      agent: text("agent"),
      status: tr.getAttribute("data-status") || "",
      priority: text("priority"),
      sla_text: text("sla_text"),
    };
    for (const [name, value] of Object.entries(values)) {
      for (const element of detail(name)) setText(element, value);
    }
    for (const box of detail("description")) {
      box.replaceChildren();
      const description = tr.getAttribute("data-description") || "";
      const paragraphs = description.split(/\n\s*\n/).filter((part) => part.trim());
      if (!paragraphs.length) {
        const none = document.createElement("p");
        none.className = "u-text-muted";
        none.textContent = "No description.";
        box.appendChild(none);
      }
      for (const part of paragraphs) {
        const paragraph = document.createElement("p");
        paragraph.className = "card__text";
        paragraph.textContent = part.trim();
        box.appendChild(paragraph);
      }
    }
    const source = fields(tr, "number")[0];
    for (const link of detail("link")) {
      const href = source ? source.getAttribute("href") : null;
      setAttribute(link, "href", href);
      link.hidden = !href;
    }
    dialog.showModal();
  }

  root.addEventListener("click", (event) => {
    // The subject is a link to the ticket's details, shown in the panel instead of a page.
    const link = event.target.closest("[data-detail]");
    if (!link || !dialog) return;
    const tr = link.closest("tr[data-ticket]");
    if (!tr) return;
    event.preventDefault();
    openDetail(tr);
  });

  // ---------- the agent filter: choosing is enough ----------

  const filter = document.querySelector("form[data-agent-filter]");
  if (filter) {
    const select = filter.querySelector("select");
    select.addEventListener("change", () => filter.requestSubmit());
  }

  // ---------- "sync tickets now" ----------

  const syncButton = document.querySelector("[data-sync-start]");
  const progress = document.querySelector("[data-sync-progress]");

  function describeJob(job) {
    if (job.status === "running") {
      const phase = job.progress && job.progress.phase;
      return phase ? `Syncing: ${phase}, ${job.progress.done || 0} read\u2026` : "Syncing: starting\u2026";
    }
    if (job.status === "succeeded") return "Sync finished.";
    if (job.status === "partial") return "Sync finished; some tickets could not be read.";
    return `Sync failed${job.error ? `: ${job.error}` : "."}`;
  }

  async function followJob(url) {
    let job = null;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      job = await response.json().catch(() => null);
      if (response.status >= 400 && response.status < 500) {
        // Refused or unknown: asking again will not help.
        setText(progress, `Cannot follow the sync: ${(job && job.detail) || response.status}.`);
        progress.setAttribute("data-job-status", "unknown");
        syncButton.disabled = false;
        syncButton.removeAttribute("aria-busy");
        return;
      }
      if (!response.ok) throw new Error((job && job.detail) || `answered ${response.status}`);
    } catch (error) {
      setText(progress, `Cannot follow the sync (${error.message}); retrying\u2026`);
      window.setTimeout(() => followJob(url), SYNC_POLL_MS);
      return;
    }
    setText(progress, describeJob(job));
    progress.setAttribute("data-job-status", job.status);
    if (job.status === "running") {
      window.setTimeout(() => followJob(url), SYNC_POLL_MS);
      return;
    }
    syncButton.disabled = false;
    syncButton.removeAttribute("aria-busy");
    refresh();
  }

  if (syncButton && progress) {
    syncButton.addEventListener("click", async () => {
      syncButton.disabled = true;
      syncButton.setAttribute("aria-busy", "true");
      setText(progress, "Asking Codex to sync\u2026");
      progress.setAttribute("data-job-status", "starting");
      let body = null;
      let response = null;
      try {
        response = await fetch(syncButton.getAttribute("data-sync-url"), {
          method: "POST", credentials: "same-origin",
          headers: { Accept: "application/json", "Content-Type": "application/json" }, body: "{}",
        });
        body = await response.json().catch(() => null);
      } catch (error) {
        body = { detail: error.message };
      }
      if (response && (response.status === 202 || response.status === 409) && body && body.status_url) {
        setText(progress, response.status === 409 ? "A sync is already running; following it\u2026"
          : "Syncing: starting\u2026");
        progress.setAttribute("data-job-status", "running");
        window.setTimeout(() => followJob(body.status_url), SYNC_POLL_MS);
        return;
      }
      setText(progress, `The sync did not start: ${(body && body.detail) || "no answer"}.`);
      progress.setAttribute("data-job-status", "refused");
      syncButton.disabled = false;
      syncButton.removeAttribute("aria-busy");
    });
  }
})();
