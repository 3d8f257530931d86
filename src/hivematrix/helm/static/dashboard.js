// Helm's dashboard: every few seconds the service rows are updated in place from
// /api/services, without reloading the page. Values are written with textContent only.
(function () {
  "use strict";

  var STATES = {running: "status-text--success", starting: "status-text--warning",
                restarting: "status-text--danger"};
  var HEALTH = {healthy: "badge--success", degraded: "badge--warning",
                unhealthy: "badge--danger", unreachable: "badge--danger"};

  var table = document.querySelector("[data-services-table]");
  if (!table) {
    return;
  }
  var url = table.getAttribute("data-status-url");
  var seconds = parseInt(table.getAttribute("data-refresh-seconds"), 10) || 10;
  var status = document.querySelector("[data-refresh-status]");
  var busy = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function rowsByName() {
    // Compared as attribute values, never put into a selector: a name is data, not syntax.
    var found = {};
    table.querySelectorAll("tr[data-service]").forEach(function (row) {
      found[row.getAttribute("data-service")] = row;
    });
    return found;
  }

  function field(row, name) {
    var found = null;
    row.querySelectorAll("[data-field]").forEach(function (element) {
      if (element.getAttribute("data-field") === name) {
        found = element;
      }
    });
    return found;
  }

  function put(row, name, text) {
    var element = field(row, name);
    if (element && element.textContent !== text) {
      element.textContent = text;
    }
  }

  function number(value, digits) {
    return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
  }

  function update(row, service) {
    var state = field(row, "state");
    if (state) {
      state.textContent = String(service.state);
      state.className = "status-text " + (STATES[service.state] || "status-text--muted");
    }
    var health = field(row, "health");
    if (health) {
      health.textContent = String(service.health);
      health.className = "badge" + (HEALTH[service.health] ? " " + HEALTH[service.health] : "");
    }
    put(row, "pid", service.pid ? String(service.pid) : "-");
    put(row, "port", String(service.port));
    put(row, "cpu_percent", number(service.cpu_percent, 1));
    put(row, "memory_mb", number(service.memory_mb, 0));
    put(row, "restarts", String(service.restarts));
    row.querySelectorAll("td[data-level]").forEach(function (cell) {
      var counts = service.log_counts || {};
      var count = counts[cell.getAttribute("data-level")];
      cell.textContent = String(count || 0);
    });
    var restart = row.querySelector("form[data-restart]");
    if (restart) {
      restart.hidden = !service.restartable;
    }
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the status API answered " + response.status);
        }
        return response.json();
      })
      .then(function (answer) {
        var rows = rowsByName();
        var services = answer.services || [];
        var changed = services.length !== Object.keys(rows).length;
        services.forEach(function (service) {
          var row = rows[service.name];
          if (row) {
            update(row, service);
          } else {
            changed = true;
          }
        });
        say((changed ? "The list of services changed: reload to see it. " : "") +
            "Updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        say("Not updated: " + error.message);
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();
