// Helm's backups page: while a backup runs, follow its progress from the status API; when it
// has finished, load the page again once, so the new archive is listed.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var card = document.querySelector("[data-backup-run]");
  if (!card || card.getAttribute("data-state") !== "running") {
    return;
  }
  var url = card.getAttribute("data-status-url");
  var busy = false;

  function show(name, text) {
    card.querySelectorAll("[data-run-field]").forEach(function (element) {
      if (element.getAttribute("data-run-field") === name) {
        element.textContent = text;
      }
    });
  }

  function poll() {
    if (busy) {
      return;
    }
    busy = true;
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the backup status answered " + response.status);
        }
        return response.json();
      })
      .then(function (run) {
        if (run.state !== "running") {
          window.clearInterval(timer);
          window.location.reload();
          return;
        }
        show("progress", (run.phase || "Starting") +
             (run.percent === null || run.percent === undefined ? "" : ": " + run.percent + " %"));
      })
      .catch(function (error) {
        show("progress", "Progress unknown: " + error.message);
      })
      .then(function () {
        busy = false;
      });
  }

  var timer = window.setInterval(poll, POLL_MS);
})();
