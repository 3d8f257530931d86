// Brainhair's chat page: send a message, show the reply as it streams (polling the turn's
// chunks), tool activity, the approval modal, and stop. Model output is untrusted: while it
// streams it is written with textContent only; once the turn is done the server's sanitised
// rendering of the stored messages replaces the log. Without this file the form still posts.
(() => {
  "use strict";

  const POLL_MS = 300;
  const chat = document.querySelector("[data-chat]");
  if (!chat) return;

  const api = chat.dataset.api;
  const log = chat.querySelector("[data-chat-log]");
  const form = chat.querySelector("[data-chat-form]");
  const input = form.querySelector("textarea[name=message]");
  const sendButton = form.querySelector("[data-chat-send]");
  const stopButton = form.querySelector("[data-chat-stop]");
  const modal = document.querySelector("[data-approval-modal]");
  const shownApprovals = new Set();
  let responseId = null;
  let approvalId = null;

  function toast(message, kind) {
    if (window.HiveMatrix && window.HiveMatrix.toast) window.HiveMatrix.toast(message, kind);
  }

  async function call(path, options) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (init.json !== undefined) {
      init.method = init.method || "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(init.json);
      delete init.json;
    }
    const response = await fetch(api + path, init);
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    return { ok: response.ok, status: response.status, body };
  }

  function problemText(answer) {
    const body = answer.body || {};
    return body.detail || body.title || `The request failed (${answer.status}).`;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addMessage(role, text) {
    const item = element("li", `chat__message chat__message--${role}`);
    item.dataset.testid = "message";
    item.dataset.role = role;
    item.append(element("p", "chat__role", role === "user" ? "You" : "Brainhair"));
    const body = element("p", "chat__body chat__body--streaming", text || "");
    item.append(body);
    log.append(item);
    item.scrollIntoView({ block: "end" });
    return { item, body };
  }

  function setRunning(running) {
    sendButton.disabled = running;
    stopButton.hidden = !running;
  }

  async function refreshTranscript(sessionId) {
    // The server's rendering of what was stored (sanitised markdown): the only markup used.
    const response = await fetch(chat.dataset.transcript + encodeURIComponent(sessionId),
      { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return;
    log.innerHTML = await response.text();
  }

  function showApproval(payload) {
    const id = payload.approval_id || payload.id;
    if (!modal || !id || shownApprovals.has(id)) return;
    shownApprovals.add(id);
    approvalId = id;
    modal.querySelector("[data-approval-action]").textContent = payload.action || "";
    const list = modal.querySelector("[data-approval-details]");
    list.replaceChildren();
    for (const [key, value] of Object.entries(payload.details || {})) {
      list.append(element("dt", "", key));
      list.append(element("dd", "", typeof value === "string" ? value : JSON.stringify(value)));
    }
    const expiry = modal.querySelector("[data-approval-expiry]");
    expiry.textContent = payload.expires_at ? `Expires at ${payload.expires_at}.` : "";
    if (!modal.open) modal.showModal();
  }

  async function decide(approved) {
    if (!approvalId) return;
    const id = approvalId;
    approvalId = null;
    modal.close();
    const answer = await call(`/approvals/${encodeURIComponent(id)}/decision`, { json: { approved } });
    if (!answer.ok) toast(problemText(answer), "error");
  }

  function handle(chunk, reply) {
    const kind = chunk.kind || chunk.type;
    const payload = chunk.payload || chunk;
    if (kind === "text") {
      reply.body.textContent += payload.text || "";
    } else if (kind === "tool") {
      const name = payload.tool || payload.name || "a tool";
      const phase = payload.phase || payload.state || "";
      if (phase === "approval") reply.item.append(element("p", "chat__tool", `Waiting for your approval (${name})…`));
      else if (phase !== "end") reply.item.append(element("p", "chat__tool", `Using ${name}…`));
    } else if (kind === "approval") {
      showApproval(payload);
    } else if (kind === "status") {
      if (payload.text) reply.item.append(element("p", "chat__tool", payload.text));
    } else if (kind === "error") {
      reply.item.append(element("p", "form__error", payload.text || payload.message || "The reply failed."));
    }
  }

  async function follow(id, sessionId) {
    responseId = id;
    setRunning(true);
    const reply = addMessage("assistant", "");
    let offset = 0;
    let done = false;
    while (!done) {
      const answer = await call(`/chat/poll/${encodeURIComponent(id)}?offset=${offset}&render=html`);
      if (!answer.ok) {
        reply.item.append(element("p", "form__error", problemText(answer)));
        break;
      }
      const chunks = answer.body.chunks || [];
      for (const chunk of chunks) handle(chunk, reply);
      if (chunks.some((chunk) => (chunk.type || chunk.kind) === "text") && typeof answer.body.html === "string") {
        // The server's sanitised rendering of the text so far (markup in it stays text).
        const body = element("div", "chat__body");
        body.innerHTML = answer.body.html;
        reply.body.replaceWith(body);
        reply.body = body;
      }
      offset = answer.body.offset;
      done = Boolean(answer.body.done);
      if (!done) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    responseId = null;
    setRunning(false);
    if (done) await refreshTranscript(sessionId);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message || responseId) return;
    const greeting = log.querySelector("[data-greeting]");
    if (greeting) greeting.remove();
    const body = { message };
    if (chat.dataset.sessionId) body.session_id = chat.dataset.sessionId;
    setRunning(true);
    const answer = await call("/chat", { json: body });
    if (!answer.ok) {
      setRunning(false);
      toast(problemText(answer), "error");
      return;
    }
    input.value = "";
    addMessage("user", message);
    const sessionId = answer.body.session_id;
    if (sessionId && chat.dataset.sessionId !== sessionId) {
      chat.dataset.sessionId = sessionId;
      form.querySelector("input[name=session_id]").value = sessionId;
      const url = new URL(window.location.href);
      url.searchParams.set("session", sessionId);
      window.history.replaceState(null, "", url);
    }
    await follow(answer.body.response_id, sessionId);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  stopButton.addEventListener("click", async () => {
    if (!responseId) return;
    const answer = await call(`/chat/stop/${encodeURIComponent(responseId)}`, { method: "POST" });
    if (!answer.ok && answer.status !== 409) toast(problemText(answer), "error");
  });

  if (modal) {
    modal.querySelector("[data-approval-approve]").addEventListener("click", () => decide(true));
    modal.querySelector("[data-approval-deny]").addEventListener("click", () => decide(false));
    modal.addEventListener("cancel", (event) => event.preventDefault());
  }

  // A page opened while a turn runs (reload, or the form posted without script) follows it.
  if (chat.dataset.running) follow(chat.dataset.running, chat.dataset.sessionId);
})();
