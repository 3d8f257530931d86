// HiveMatrix page behaviour, injected by Nexus into every composed page (loaded with `defer`).
// Everything is delegated from `document` and does nothing on pages that lack the elements.
// See docs/design-system.md for the markup each behaviour expects.
(() => {
  "use strict";

  const root = document.documentElement;
  const SIDEBAR_KEY = "hm.sidebarCollapsed";
  const PREFERENCES_URL = "/nexus/api/preferences";
  const TOAST_KINDS = new Set(["success", "error"]);
  const TOAST_LIFETIME_MS = 8000;

  // ---------- toasts ----------

  function toastStack() {
    let stack = document.querySelector(".toast-stack");
    if (!stack) {
      stack = document.createElement("div");
      stack.className = "toast-stack";
      stack.setAttribute("aria-live", "polite");
      document.body.appendChild(stack);
    }
    return stack;
  }

  /** Show a short message in the corner; `kind` is "success", "error" or nothing. */
  function showToast(message, kind) {
    if (!document.body) return null;
    const toast = document.createElement("div");
    toast.className = TOAST_KINDS.has(kind) ? `toast toast--${kind}` : "toast";
    const text = document.createElement("span");
    text.className = "toast__message";
    text.textContent = String(message);
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    toast.append(text, close);
    toastStack().appendChild(toast);
    window.setTimeout(() => toast.remove(), TOAST_LIFETIME_MS);
    return toast;
  }

  // ---------- sidebar collapse ----------

  function setCollapsed(collapsed, remember) {
    root.classList.toggle("sidebar-collapsed", collapsed);
    for (const button of document.querySelectorAll("[data-nav-toggle]")) {
      button.setAttribute("aria-expanded", String(!collapsed));
      button.setAttribute("aria-label", collapsed ? "Expand navigation" : "Collapse navigation");
    }
    // With labels hidden, give mouse users a tooltip; never overwrite a title Nexus set itself.
    for (const item of document.querySelectorAll(".side-nav .side-nav__link, .side-nav .theme-toggle")) {
      const label = item.querySelector(".side-nav__label, .theme-toggle__label");
      if (!label) continue;
      if (collapsed && (!item.title || item.dataset.hmTitle === "1")) {
        item.title = label.textContent.trim();
        item.dataset.hmTitle = "1";
      } else if (!collapsed && item.dataset.hmTitle === "1") {
        item.removeAttribute("title");
        delete item.dataset.hmTitle;
      }
    }
    if (remember) {
      try {
        window.localStorage.setItem(SIDEBAR_KEY, collapsed ? "1" : "0");
      } catch {
        // Storage may be disabled (private mode, policy); the toggle still works for this page.
      }
    }
  }

  // ---------- theme toggle ----------

  let themeRequest = 0;

  function currentTheme() {
    return root.getAttribute("data-theme") === "dark" ? "dark" : "light";
  }

  function applyTheme(theme) {
    root.setAttribute("data-theme", theme);
    for (const button of document.querySelectorAll("[data-theme-toggle]")) {
      button.setAttribute("aria-pressed", String(theme === "dark"));
      const label = button.querySelector(".theme-toggle__label");
      if (label) label.textContent = theme === "dark" ? "Light mode" : "Dark mode";
      // A text-glyph icon (sun / moon) follows the theme; an SVG icon is left as Nexus drew it.
      const icon = button.querySelector(".theme-toggle__icon");
      if (icon && icon.children.length === 0) icon.textContent = theme === "dark" ? "\u2600" : "\u263e";
      if (button.dataset.hmTitle === "1") button.title = label ? label.textContent : "";
    }
  }

  async function toggleTheme() {
    const previous = currentTheme();
    const next = previous === "dark" ? "light" : "dark";
    const request = ++themeRequest;
    applyTheme(next);
    let saved = false;
    try {
      const response = await fetch(PREFERENCES_URL, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ theme: next }),
      });
      saved = response.ok;
    } catch {
      saved = false; // network failure: handled like a refusal
    }
    // Only the latest click decides; an older request's answer is stale.
    if (!saved && request === themeRequest) {
      applyTheme(previous);
      showToast("Your theme preference could not be saved. Please try again.", "error");
    }
  }

  // ---------- sortable tables ----------

  const collator = new Intl.Collator(root.lang || undefined, { numeric: true, sensitivity: "base" });
  const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?$/i;

  function columnIndex(cell) {
    let index = 0;
    for (const other of cell.parentElement.cells) {
      if (other === cell) return index;
      index += other.colSpan;
    }
    return index;
  }

  function cellAt(row, index) {
    let start = 0;
    for (const cell of row.cells) {
      if (index < start + cell.colSpan) return cell;
      start += cell.colSpan;
    }
    return null;
  }

  function sortKey(cell) {
    if (!cell) return "";
    const value = cell.hasAttribute("data-sort-value") ? cell.getAttribute("data-sort-value") : cell.textContent;
    return value.trim();
  }

  function asNumber(text) {
    const compact = text.replace(/[\s,\u00a0\u202f]/g, "").replace(/\u2212/g, "-");
    return NUMBER.test(compact) ? Number.parseFloat(compact) : Number.NaN;
  }

  function sortBy(header) {
    const table = header.closest("table");
    if (!table || !table.tBodies.length || !header.parentElement) return;
    const direction = header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    const factor = direction === "ascending" ? 1 : -1;
    const index = columnIndex(header);

    for (const other of table.querySelectorAll("th.table__sortable[aria-sort]")) {
      if (other !== header && other.closest("table") === table) other.removeAttribute("aria-sort");
    }
    header.setAttribute("aria-sort", direction);

    for (const body of table.tBodies) {
      const entries = Array.from(body.rows, (row) => ({ row, key: sortKey(cellAt(row, index)) }));
      const filled = entries.filter((entry) => entry.key !== "");
      const numeric = filled.length > 0 && filled.every((entry) => !Number.isNaN(asNumber(entry.key)));
      for (const entry of entries) entry.number = numeric ? asNumber(entry.key) : 0;
      entries.sort((a, b) => {
        // Empty cells go last whichever way the column is sorted.
        if (a.key === "" || b.key === "") return (a.key === "") - (b.key === "");
        const order = numeric ? a.number - b.number : collator.compare(a.key, b.key);
        return order * factor;
      });
      const fragment = document.createDocumentFragment();
      for (const entry of entries) fragment.appendChild(entry.row);
      body.appendChild(fragment);
    }
  }

  // ---------- tabs (buttons with aria-controls) and modals (<dialog>) ----------

  function selectTab(tab, focus) {
    const list = tab.closest(".tabs");
    if (!list) return;
    for (const other of list.querySelectorAll(".tabs__tab[aria-controls]")) {
      const active = other === tab;
      other.classList.toggle("tabs__tab--active", active);
      other.setAttribute("aria-selected", String(active));
      other.tabIndex = active ? 0 : -1;
      const panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !active;
    }
    if (focus) tab.focus();
  }

  function moveTab(tab, key) {
    const tabs = Array.from(tab.closest(".tabs").querySelectorAll(".tabs__tab[aria-controls]"));
    const at = tabs.indexOf(tab);
    const target = {
      ArrowRight: tabs[(at + 1) % tabs.length],
      ArrowLeft: tabs[(at - 1 + tabs.length) % tabs.length],
      Home: tabs[0],
      End: tabs[tabs.length - 1],
    }[key];
    if (target) selectTab(target, true);
    return Boolean(target);
  }

  function openModal(id) {
    const dialog = id ? document.getElementById(id) : null;
    if (dialog instanceof HTMLDialogElement && !dialog.open) dialog.showModal();
  }

  // ---------- wiring ----------

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;

    if (target.closest("[data-nav-toggle]")) {
      setCollapsed(!root.classList.contains("sidebar-collapsed"), true);
      return;
    }
    if (target.closest("[data-theme-toggle]")) {
      toggleTheme();
      return;
    }
    const close = target.closest(".toast__close");
    if (close) {
      close.closest(".toast")?.remove();
      return;
    }
    const header = target.closest("th.table__sortable");
    if (header && !target.closest("a, button, input, select, textarea")) {
      sortBy(header);
      return;
    }
    const tab = target.closest(".tabs__tab[aria-controls]");
    if (tab) {
      event.preventDefault();
      selectTab(tab, false);
      return;
    }
    const opener = target.closest("[data-modal-open]");
    if (opener) {
      event.preventDefault();
      openModal(opener.getAttribute("data-modal-open"));
      return;
    }
    const closer = target.closest("[data-modal-close]");
    if (closer) {
      closer.closest("dialog")?.close();
      return;
    }
    // A click on the backdrop lands on the <dialog> itself, outside its box.
    if (target instanceof HTMLDialogElement && target.open && target.classList.contains("modal")) {
      const box = target.getBoundingClientRect();
      const inside = event.clientX >= box.left && event.clientX <= box.right
        && event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) target.close();
    }
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target || event.altKey || event.ctrlKey || event.metaKey) return;
    if (target.matches("th.table__sortable") && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      sortBy(target);
    } else if (target.matches(".tabs__tab[aria-controls]") && moveTab(target, event.key)) {
      event.preventDefault();
    }
  });

  function init() {
    // Bring the controls' ARIA state in line with what the pre-paint script applied.
    setCollapsed(root.classList.contains("sidebar-collapsed"), false);
    if (document.querySelector("[data-theme-toggle]")) applyTheme(currentTheme());
    for (const header of document.querySelectorAll("th.table__sortable:not([tabindex])")) {
      header.tabIndex = 0;
    }
    for (const list of document.querySelectorAll(".tabs")) {
      const tabs = list.querySelectorAll(".tabs__tab[aria-controls]");
      if (!tabs.length) continue;
      const active = list.querySelector(".tabs__tab--active[aria-controls], .tabs__tab[aria-selected='true'][aria-controls]");
      selectTab(active || tabs[0], false);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init, { once: true });
  } else {
    init();
  }

  // A small hook for services' own scripts: window.HiveMatrix.toast("Saved", "success").
  if (!("HiveMatrix" in window)) window.HiveMatrix = Object.freeze({ toast: showToast });
})();
