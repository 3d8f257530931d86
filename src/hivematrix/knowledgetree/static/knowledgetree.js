// KnowledgeTree's pages: search as you type, the context-export dialog, copy buttons and the
// admin page's sync progress. Every page works without this file; with it, answers from the
// API are written with textContent and created elements only, never as markup.
(() => {
  "use strict";

  const JSON_HEADERS = { Accept: "application/json" };
  const SEARCH_DELAY_MS = 250;
  const SEARCH_MIN_CHARS = 2;
  const SYNC_POLL_MS = 2000;

  function show(element, shown) {
    if (element) element.classList.toggle("u-hidden", !shown);
  }

  async function getJson(url, options) {
    const response = await fetch(url, { credentials: "same-origin", headers: JSON_HEADERS, ...options });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    return { ok: response.ok, status: response.status, body };
  }

  // ---------- search as you type ----------

  // The snippet with its highlighted words in <mark>; offsets count code points, as the
  // server's do.
  function snippetNode(snippet, highlights) {
    const chars = Array.from(snippet || "");
    const paragraph = document.createElement("p");
    paragraph.className = "card__text";
    let at = 0;
    const spans = (highlights || []).map((span) => [Number(span[0]), Number(span[1])])
      .filter((span) => span[0] < span[1]).sort((a, b) => a[0] - b[0]);
    for (const [start, end] of spans) {
      if (start < at) continue;
      if (start > at) paragraph.append(document.createTextNode(chars.slice(at, start).join("")));
      const mark = document.createElement("mark");
      mark.textContent = chars.slice(start, end).join("");
      paragraph.append(mark);
      at = end;
    }
    if (at < chars.length) paragraph.append(document.createTextNode(chars.slice(at).join("")));
    return paragraph;
  }

  function setUpSearch(form) {
    const input = form.querySelector("[data-search-input]");
    const list = form.querySelector("[data-search-results]");
    const status = form.querySelector("[data-search-status]");
    const api = form.getAttribute("data-search-api");
    const itemUrl = form.getAttribute("data-item-url");
    if (!input || !list || !api || !itemUrl) return;
    let timer = null;
    let asked = 0;

    function render(results, total) {
      list.replaceChildren();
      for (const hit of results) {
        const entry = document.createElement("li");
        entry.className = "u-mb-1";
        entry.setAttribute("data-testid", "suggestion");
        const link = document.createElement("a");
        link.href = itemUrl.replace("ITEM_ID", encodeURIComponent(hit.id));
        link.textContent = hit.name;
        const path = document.createElement("span");
        path.className = "card__meta";
        path.textContent = ` ${hit.folder_path || ""}`;
        entry.append(link, path, snippetNode(hit.snippet, hit.highlights));
        list.append(entry);
      }
      status.textContent = total === 0 ? "Nothing matches." : `${total} result${total === 1 ? "" : "s"}, best first.`;
      show(status, true);
      show(list, results.length > 0);
    }

    async function ask(query) {
      const mine = ++asked;
      const url = `${api}?${new URLSearchParams({ query, limit: "10" })}`;
      let answer;
      try {
        answer = await getJson(url);
      } catch (error) {
        answer = { ok: false, body: null };
      }
      if (mine !== asked) return; // a newer query is on its way: this answer is stale
      if (!answer.ok || !answer.body) {
        status.textContent = "Search is unavailable right now.";
        show(status, true);
        show(list, false);
        return;
      }
      render(answer.body.results || [], answer.body.total || 0);
    }

    input.addEventListener("input", () => {
      window.clearTimeout(timer);
      const query = input.value.trim();
      if (query.length < SEARCH_MIN_CHARS) {
        asked++;
        list.replaceChildren();
        show(list, false);
        show(status, false);
        return;
      }
      timer = window.setTimeout(() => ask(query), SEARCH_DELAY_MS);
    });
  }

  // ---------- the context-export dialog ----------

  function setUpContext(dialog) {
    const opener = document.querySelector("[data-context-open]");
    const form = dialog.querySelector("[data-context-form]");
    const folders = dialog.querySelector("[data-context-folders]");
    const none = dialog.querySelector("[data-context-none]");
    const output = dialog.querySelector("[data-context-output]");
    const status = dialog.querySelector("[data-context-status]");
    const api = dialog.getAttribute("data-context-api");
    if (!opener || !form || !api || typeof dialog.showModal !== "function") return;
    const known = new Map(); // attached folder id -> its checkbox, kept across regenerations

    function excluded() {
      return Array.from(known.entries()).filter(([, box]) => !box.checked).map(([id]) => id);
    }

    function offer(attached) {
      for (const folder of attached || []) {
        if (known.has(folder.id)) continue;
        const label = document.createElement("label");
        label.className = "form__checkbox";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = true;
        box.setAttribute("data-folder-id", folder.id);
        box.addEventListener("change", generate);
        label.append(box, document.createTextNode(` ${folder.name}`));
        folders.append(label);
        known.set(folder.id, box);
      }
      show(none, known.size === 0);
    }

    async function generate(event) {
      if (event) event.preventDefault();
      const budget = Number.parseInt(form.elements.max_chars.value, 10);
      const body = { excluded_ids: excluded() };
      if (Number.isFinite(budget)) body.max_chars = budget;
      status.textContent = "Generating…";
      let answer;
      try {
        answer = await getJson(api, {
          method: "POST", headers: { ...JSON_HEADERS, "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
      } catch (error) {
        answer = { ok: false, body: null };
      }
      if (!answer.ok || !answer.body) {
        status.textContent = (answer.body && answer.body.detail) || "The context could not be generated.";
        return;
      }
      offer(answer.body.attached_folders);
      output.textContent = answer.body.context;
      status.textContent = `${answer.body.chars} of ${answer.body.budget} characters${answer.body.truncated ? "; something did not fit" : ""}.`;
    }

    opener.addEventListener("click", (event) => {
      event.preventDefault();
      dialog.showModal();
      generate();
    });
    form.addEventListener("submit", generate);
    const close = dialog.querySelector("[data-context-close]");
    if (close) close.addEventListener("click", () => dialog.close());
  }

  // ---------- copy buttons ----------

  function setUpCopy(button) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.getAttribute("data-copy-target"));
      const label = button.querySelector(".btn__label") || button;
      if (!source || !navigator.clipboard) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        label.textContent = "Copied";
      } catch (error) {
        label.textContent = "Copy failed";
      }
    });
  }

  // ---------- the admin page's sync progress ----------

  function setUpSync(card) {
    const api = card.getAttribute("data-sync-api");
    const state = card.querySelector("[data-sync-state]");
    const result = card.querySelector("[data-sync-result]");
    const button = card.querySelector("[data-sync-button]");
    let wasRunning = false;

    async function poll() {
      let answer;
      try {
        answer = await getJson(api);
      } catch (error) {
        answer = { ok: false, body: null };
      }
      if (answer.ok && answer.body) {
        const sync = answer.body;
        if (sync.running) {
          state.textContent = `Running: ${sync.done} of ${sync.total} companies${sync.current ? ` (now ${sync.current})` : ""}.`;
        } else if (sync.finished_at) {
          const finished = new Date(Number(sync.finished_at) * 1000);
          state.textContent = `Last finished ${finished.toISOString().slice(0, 16).replace("T", " ")} UTC.`;
        }
        if (result && sync.last_result) {
          result.textContent = `Last result: ${Object.entries(sync.last_result).map(([key, value]) => `${key} ${typeof value === "object" ? JSON.stringify(value) : value}`).join(", ")}`;
        }
        if (button) button.disabled = Boolean(sync.running);
        wasRunning = Boolean(sync.running);
      }
      window.setTimeout(poll, wasRunning ? SYNC_POLL_MS : SYNC_POLL_MS * 5);
    }

    poll();
  }

  document.querySelectorAll("[data-search]").forEach(setUpSearch);
  document.querySelectorAll("[data-context-dialog]").forEach(setUpContext);
  document.querySelectorAll("[data-copy-target]").forEach(setUpCopy);
  document.querySelectorAll("[data-sync]").forEach(setUpSync);
})();
