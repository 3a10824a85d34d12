// The operators' queue refreshes itself: the table is fetched again every few
// seconds and swapped in, unless a control inside it has the keyboard focus
// (so keyboard users never lose their place). Without JavaScript the page
// reloads itself (<noscript> refresh).
(function () {
  "use strict";
  var region = document.getElementById("queue");
  if (!region || !window.fetch) { return; }
  var url = region.getAttribute("data-refresh-url");
  var every = Number(region.getAttribute("data-refresh-seconds") || "5") * 1000;

  function refresh() {
    if (document.hidden) { return; }
    var focused = document.activeElement;
    if (focused && focused !== document.body && region.contains(focused)) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload();  // signed out meanwhile: show the sign-in page
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html !== null) { region.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, every);
})();
