// The playground: follows the thread's stream (SSE: user, post, edit, notice, run entries) and sends messages
// and files with the session's CSRF token.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    const chat = document.getElementById("chat");
    if (!chat) { return; }
    const thread = chat.dataset.thread;
    const csrf = chat.dataset.csrf;
    const log = document.getElementById("log");
    const form = document.getElementById("send");
    const input = document.getElementById("text");
    const file = document.getElementById("file");
    const bubbles = {};

    // The bot writes Markdown: bold and code are drawn, everything else stays text. The text is escaped first,
    // so only these two tags can come out of it.
    function rendered(text) {
      const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
      return escaped
        .replace(/`([^`\n]+)`/g, "<code>$1</code>")
        .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
    }

    function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 80; }

    function bubble(kind, id, text) {
      const stick = atBottom();
      let node = bubbles[id];
      if (!node) {
        node = document.createElement("div");
        node.className = "msg " + kind;
        node.dataset.id = id;
        const body = document.createElement("div");
        body.className = "body";
        node.appendChild(body);
        log.appendChild(node);
        bubbles[id] = node;
      }
      if (kind === "bot") {
        node.querySelector(".body").innerHTML = rendered(text);
      } else {
        node.querySelector(".body").textContent = text;
      }
      if (stick) { log.scrollTop = log.scrollHeight; }
      return node;
    }

    function attach(node, data) {
      if (!data.url) { return; }
      const link = document.createElement("a");
      link.href = data.url;
      link.className = "attachment";
      link.textContent = "Attachment: " + data.file + " (" + data.size + " bytes)";
      node.appendChild(link);
    }

    const source = new EventSource("/playground/stream?thread=" + encodeURIComponent(thread));
    source.addEventListener("user", function (e) { const d = JSON.parse(e.data); bubble("user", d.id, d.text); });
    source.addEventListener("notice", function (e) { const d = JSON.parse(e.data); bubble("notice", d.id, d.text); });
    source.addEventListener("post", function (e) {
      const d = JSON.parse(e.data);
      attach(bubble("bot", d.id, d.text), d);
    });
    source.addEventListener("edit", function (e) { const d = JSON.parse(e.data); bubble("bot", d.id, d.text); });
    source.addEventListener("run", function (e) {
      const d = JSON.parse(e.data);
      const node = bubbles[d.of];
      if (!node || node.querySelector(".run")) { return; }
      const link = document.createElement("a");
      link.href = "/runs/" + d.run;
      link.className = "run";
      link.textContent = "run #" + d.run;
      node.appendChild(link);
    });
    source.addEventListener("open", function () { document.body.classList.remove("offline"); });
    source.addEventListener("error", function () { document.body.classList.add("offline"); });

    async function post(url, body) {
      const response = await fetch(url, { method: "POST", body: body, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
      if (!response.ok && response.status !== 422) {
        bubble("notice", "error-" + Date.now(), "Not sent: " + (await response.text()));
      }
    }

    async function submit(event) {
      event.preventDefault();
      const text = input.value.trim();
      const chosen = file.files.length ? file.files[0] : null;
      if (!text && !chosen) { return; }
      input.value = "";
      if (chosen) {
        const body = new FormData();
        body.append("thread", thread);
        body.append("text", text);
        body.append("file", chosen);
        file.value = "";
        attachLabel.textContent = "Attach";
        await post("/playground/upload", body);
      } else {
        await post("/playground/send", new URLSearchParams({ thread: thread, text: text }));
      }
      input.focus();
    }

    const attachButton = document.querySelector(".compose .file");
    const attachLabel = attachButton.firstChild;
    file.addEventListener("change", function () {
      attachLabel.textContent = file.files.length ? "Attach: " + file.files[0].name : "Attach";
    });

    form.addEventListener("submit", submit);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { submit(event); }
    });
    input.focus();
  });
})();
