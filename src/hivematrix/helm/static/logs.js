// Helm's log viewer: live mode polls the log API and puts new entries at the top.
// Every row is built with createElement and textContent: log text is never parsed as HTML.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var BADGES = {INFO: "badge--info", WARNING: "badge--warning", ERROR: "badge--danger",
                CRITICAL: "badge--danger"};
  var FILTERS = ["service", "level", "correlation_id", "user", "since", "until", "q"];

  var table = document.querySelector("[data-log-table]");
  var toggle = document.querySelector("[data-live-toggle]");
  if (!table || !toggle) {
    return;
  }
  var rows = table.querySelector("[data-log-rows]");
  var status = document.querySelector("[data-live-status]");
  var apiUrl = table.getAttribute("data-api-url");
  var pageUrl = table.getAttribute("data-page-url");
  var latestId = parseInt(table.getAttribute("data-latest-id"), 10) || 0;
  var timer = null;
  var busy = false;

  function currentFilters() {
    var here = new URLSearchParams(window.location.search);
    var kept = new URLSearchParams();
    FILTERS.forEach(function (name) {
      var value = here.get(name);
      if (value) {
        kept.set(name, value);
      }
    });
    return kept;
  }

  function filterHref(name, value) {
    var params = currentFilters();
    params.set(name, value);
    return pageUrl + "?" + params.toString();
  }

  function cell(text) {
    var td = document.createElement("td");
    if (text !== null && text !== undefined) {
      td.textContent = String(text);
    }
    return td;
  }

  function linkCell(name, value, asCode) {
    var td = document.createElement("td");
    if (!value) {
      return td;
    }
    var link = document.createElement("a");
    link.href = filterHref(name, value);
    link.setAttribute("data-filter", name);
    if (asCode) {
      var code = document.createElement("code");
      code.className = "code";
      code.textContent = value;
      link.appendChild(code);
    } else {
      link.textContent = value;
    }
    td.appendChild(link);
    return td;
  }

  function levelCell(level) {
    var td = document.createElement("td");
    var badge = document.createElement("span");
    badge.className = "badge" + (BADGES[level] ? " " + BADGES[level] : "");
    badge.textContent = level;
    td.appendChild(badge);
    return td;
  }

  function contextCell(context) {
    var td = document.createElement("td");
    var keys = context && typeof context === "object" ? Object.keys(context) : [];
    if (!keys.length) {
      return td;
    }
    var details = document.createElement("details");
    var summary = document.createElement("summary");
    summary.textContent = keys.length + (keys.length === 1 ? " field" : " fields");
    var pre = document.createElement("pre");
    pre.className = "code";
    pre.textContent = JSON.stringify(context, null, 2);
    details.appendChild(summary);
    details.appendChild(pre);
    td.appendChild(details);
    return td;
  }

  function buildRow(entry) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", String(entry.id));
    tr.setAttribute("data-live", "");
    tr.appendChild(cell(String(entry.timestamp || "").replace("T", " ").slice(0, 19)));
    tr.appendChild(linkCell("service", entry.service, false));
    tr.appendChild(levelCell(String(entry.level || "")));
    var message = cell(entry.message);
    message.setAttribute("data-testid", "log-message");
    tr.appendChild(message);
    tr.appendChild(linkCell("correlation_id", entry.correlation_id, true));
    tr.appendChild(linkCell("user", entry.user, false));
    tr.appendChild(contextCell(entry.context));
    return tr;
  }

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function poll() {
    if (busy) {
      return;
    }
    busy = true;
    var params = currentFilters();
    params.set("after_id", String(latestId));
    params.set("limit", "100");
    fetch(apiUrl + "?" + params.toString(), {
      credentials: "same-origin",
      headers: {"Accept": "application/json"}
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("the log API answered " + response.status);
      }
      return response.json();
    }).then(function (page) {
      var entries = page.logs || [];
      // Newest first: insert from the oldest so the newest ends up on top.
      for (var i = entries.length - 1; i >= 0; i -= 1) {
        rows.insertBefore(buildRow(entries[i]), rows.firstChild);
        if (entries[i].id > latestId) {
          latestId = entries[i].id;
        }
      }
      if (entries.length) {
        var empty = document.querySelector("[data-log-empty]");
        if (empty) {
          empty.hidden = true;
        }
      }
      say("Live: updated " + new Date().toLocaleTimeString());
    }).catch(function (error) {
      say("Live: " + error.message);
    }).then(function () {
      busy = false;
    });
  }

  function setLive(on) {
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.classList.toggle("btn--primary", on);
    toggle.classList.toggle("btn--secondary", !on);
    if (on) {
      poll();
      timer = window.setInterval(poll, POLL_MS);
      say("Live");
    } else {
      window.clearInterval(timer);
      timer = null;
      say("Paused");
    }
  }

  toggle.addEventListener("click", function () {
    setLive(timer === null);
  });
})();
