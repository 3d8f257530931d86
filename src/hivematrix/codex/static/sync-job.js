// Live progress of a running Codex sync job: polls the job's JSON (the URL is in
// data-job-poll) and reloads the page once the job has ended, so the whole log shows.
// Text is only ever set with textContent: nothing from the server becomes markup.
(() => {
  "use strict";

  const POLL_MS = 2000;
  const card = document.querySelector("[data-job-poll]");
  const url = card ? card.getAttribute("data-job-poll") : "";
  if (!url) return;
  const progress = document.querySelector("[data-testid=job-progress]");
  const badge = document.querySelector("[data-testid=job-status]");

  function describe(job) {
    const phase = job.progress && job.progress.phase;
    if (!phase) return "starting\u2026";
    return `${phase}: ${job.progress.done} read`;
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
    if (job && job.status !== "running") {
      window.location.reload();
      return;
    }
    if (job && progress) progress.textContent = describe(job);
    window.setTimeout(poll, POLL_MS);
  }

  if (badge) badge.setAttribute("aria-busy", "true");
  window.setTimeout(poll, POLL_MS);
})();
