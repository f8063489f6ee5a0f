// Live fragments: an element with data-live="URL" is replaced by each HTML fragment the server sends over SSE.
"use strict";
(function () {
  function follow(element) {
    const source = new EventSource(element.dataset.live);
    source.addEventListener("fragment", function (event) {
      element.innerHTML = event.data;
      element.dispatchEvent(new CustomEvent("live-updated", { bubbles: true }));
    });
    source.addEventListener("open", function () { document.body.classList.remove("offline"); });
    source.addEventListener("error", function () { document.body.classList.add("offline"); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(follow);
  });
})();
