// scm console: replace the live part of a page with each fragment the server sends.
// The server renders and escapes every fragment; this script only swaps it in.
"use strict";
(function () {
  const main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource) {
    return;
  }
  const target = document.getElementById("live");
  const state = document.getElementById("live-state");
  const source = new EventSource(main.dataset.live);
  source.addEventListener("update", function (event) {
    const message = JSON.parse(event.data);
    target.innerHTML = message.html;
    if (state) {
      state.textContent = "live, updated " + new Date().toISOString().slice(11, 19) + " UTC";
    }
  });
  source.addEventListener("error", function () {
    if (state) {
      state.textContent = "reconnecting…";
    }
  });
})();
