// Tells the window that opened the sign-in popup how it went (only our own origin can read it),
// then closes the popup on success. On errors the page stays open so the admin can read it.
(function () {
  var body = document.body;
  var outcome = body.getAttribute("data-outcome");
  var message = {
    type: "tokenwarden.oauth",
    outcome: outcome,
    tokenId: body.getAttribute("data-token-id"),
    message: body.getAttribute("data-message")
  };
  try {
    if (window.opener && !window.opener.closed) {
      window.opener.postMessage(message, window.location.origin);
    }
  } catch (e) { /* the opener navigated away */ }
  if ("BroadcastChannel" in window) {
    try { new BroadcastChannel("tokenwarden.oauth").postMessage(message); } catch (e) { /* ignore */ }
  }
  if (outcome === "ok" && window.opener) {
    setTimeout(function () { window.close(); }, 1200);
  }
})();
