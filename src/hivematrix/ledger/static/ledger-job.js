// Progress of a running Ledger snapshot job: polls the job's JSON (its URL is in
// data-job-poll), updates the counts in place and reloads the page once the job has
// ended, so its errors show. Text is only ever set with textContent.
(() => {
  "use strict";

  const POLL_MS = 1500;
  const card = document.querySelector("[data-job-poll]");
  const url = card ? card.getAttribute("data-job-poll") : "";
  if (!url) return;
  const unfinished = (card.getAttribute("data-job-unfinished") || "queued,running").split(",");
  const shown = {
    progress: document.querySelector("[data-testid=job-progress]"),
    created: document.querySelector("[data-testid=job-created]"),
    skipped: document.querySelector("[data-testid=job-skipped]"),
    failed: document.querySelector("[data-testid=job-failed]"),
  };
  const badge = document.querySelector("[data-job-status]");

  function show(job) {
    if (shown.progress) shown.progress.textContent = `${job.processed} of ${job.total} companies`;
    for (const name of ["created", "skipped", "failed"]) {
      if (shown[name]) shown[name].textContent = String(job[name]);
    }
    if (badge) {
      badge.textContent = job.status;
      badge.setAttribute("data-job-status", job.status);
    }
  }

  async function poll() {
    let job = null;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) job = await response.json();
    } catch {
      job = null; // a failed poll is retried on the next tick
    }
    if (job) show(job);
    if (job && !unfinished.includes(job.status)) {
      window.location.reload();
      return;
    }
    window.setTimeout(poll, POLL_MS);
  }

  if (badge) badge.setAttribute("aria-busy", "true");
  window.setTimeout(poll, POLL_MS);
})();
