// tokenwarden admin UI behaviour. No inline script anywhere (CSP script-src 'self'): pages mark
// elements with data- attributes and this file wires them up.
(function () {
  "use strict";

  document.body.classList.add("js");

  // --- the menu on narrow screens: <button class="navtoggle"> folds the header open -----
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest(".navtoggle") : null;
    if (!btn) return;
    var bar = btn.closest(".topbar");
    var open = !bar.classList.contains("open");
    bar.classList.toggle("open", open);
    btn.setAttribute("aria-expanded", open ? "true" : "false");
  });

  function csrf() {
    return document.body.getAttribute("data-csrf") || "";
  }

  // --- copy buttons: <button data-copy="#selector"> ---------------------------------------
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (!btn) return;
    var el = document.querySelector(btn.getAttribute("data-copy"));
    if (!el) return;
    var text = "value" in el && el.tagName !== "PRE" ? el.value : el.textContent;
    var label = btn.textContent;
    function done(msg) {
      btn.textContent = msg;
      setTimeout(function () { btn.textContent = label; }, 1500);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () {
        fallback();
      });
    } else {
      fallback();
    }
    function fallback() {
      if (el.select) { el.select(); } else {
        var r = document.createRange(); r.selectNodeContents(el);
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
      }
      done("Press Ctrl+C");
    }
  });

  // --- confirmations: <form data-confirm="..."> -------------------------------------------
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  }, true);

  // --- live countdowns: <span class="countdown" data-expires-ms data-lead-ms> -------------
  // The words of the server's `ui::view::fmt_span`: "3 days 4 hours", "12 minutes".
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    function w(n, unit) { return n + " " + unit + (n === 1 ? "" : "s"); }
    if (d > 0) return w(d, "day") + (h > 0 ? " " + w(h, "hour") : "");
    if (h > 0) return w(h, "hour") + (m > 0 ? " " + w(m, "minute") : "");
    if (m > 0) return w(m, "minute");
    return w(s, "second");
  }
  // Count from the service's clock, not the browser's: each countdown carries the service's
  // "now" at render time; the browser's clock only measures how much time has passed since.
  var loadedAt = Date.now();
  function tick() {
    var elapsed = Date.now() - loadedAt;
    document.querySelectorAll(".countdown[data-expires-ms]").forEach(function (el) {
      var exp = parseInt(el.getAttribute("data-expires-ms"), 10);
      if (!exp) return;
      var serverNow = parseInt(el.getAttribute("data-now-ms"), 10) || loadedAt;
      var left = exp - (serverNow + elapsed);
      el.textContent = left <= 0 ? "expired " + span(-left) + " ago" : span(left) + " left";
      // The server's class is authoritative on load; only ever escalate it as time passes.
      var lead = parseInt(el.getAttribute("data-lead-ms"), 10) || 0;
      if (left < 86400000) {
        el.classList.remove("ok", "warn"); el.classList.add("crit");
      } else if (left <= lead && el.classList.contains("ok")) {
        el.classList.remove("ok"); el.classList.add("warn");
      }
    });
  }
  setInterval(tick, 30000);

  // --- a session that ended while the page was open ----------------------------------------
  // The server answers 401 (htmx: with X-Tokenwarden-Login; the popup's request: JSON with
  // `login`): say so above the page, with a link that signs in and comes back here.
  function sessionEnded() {
    var main = document.querySelector("main.content") || document.body;
    var box = document.getElementById("session-ended");
    if (!box) {
      box = document.createElement("p");
      box.id = "session-ended";
      box.className = "notice crit";
      box.setAttribute("role", "alert");
      main.insertBefore(box, main.firstChild);
    }
    box.textContent = "Your session has ended, so nothing was done. ";
    var a = document.createElement("a");
    // Back to this very page (the server's suggestion is the page a request's address belongs
    // to, which for the sign-in popup's request is the token's page, not this form).
    a.href = "/login?ended=1&next=" + encodeURIComponent(location.pathname + location.search);
    a.textContent = "Sign in again";
    box.appendChild(a);
    box.appendChild(document.createTextNode(" to come back to this page."));
    a.focus();
  }
  document.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail && ev.detail.xhr;
    if (xhr && xhr.status === 401) sessionEnded();
  });

  // --- the OAuth sign-in popup -------------------------------------------------------------
  // The form posts (with the CSRF token) to /tokens/{id}/authorize, which answers the
  // provider's URL; the popup, opened at once so no blocker stops it, is sent there. The
  // callback page posts {type: "tokenwarden.oauth", outcome, tokenId, message} back to us
  // (and over a BroadcastChannel, in case the opener link is lost).
  var pending = null;

  function say(text, cls) {
    var box = document.getElementById("oauth-message");
    if (!box) return;
    box.className = "oauth-message " + (cls || "");
    box.textContent = text;
  }

  function refreshStatus(tokenId) {
    var box = document.getElementById("token-status");
    if (!box || !window.htmx) return;
    window.htmx.ajax("GET", "/tokens/" + encodeURIComponent(tokenId) + "/status", {
      target: "#token-status", swap: "outerHTML"
    });
  }

  function finished(data) {
    if (!data || data.type !== "tokenwarden.oauth") return;
    if (!pending) return;
    if (data.tokenId && data.tokenId !== pending.tokenId) return;
    var p = pending;
    pending = null;
    clearInterval(p.poll);
    if (data.outcome === "ok") {
      say("Token obtained. " + (data.message || ""), "ok");
      // A page without a status box (the tokens list, an app's page) shows the news by reloading.
      if (!document.getElementById("token-status")) {
        location.reload();
        return;
      }
    } else {
      var msg = data.message || "the provider refused. The stored token was not changed.";
      if (msg.indexOf("not changed") < 0) msg += " The stored token was not changed.";
      say("Not authorized: " + msg, "crit");
    }
    refreshStatus(p.tokenId);
  }

  window.addEventListener("message", function (ev) {
    if (ev.origin !== window.location.origin) return;
    finished(ev.data);
  });
  if ("BroadcastChannel" in window) {
    try {
      new BroadcastChannel("tokenwarden.oauth").onmessage = function (ev) { finished(ev.data); };
    } catch (e) { /* ignore */ }
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-oauth-popup")) return;
    if (ev.defaultPrevented) return;
    var popup = window.open("", "tokenwarden-oauth", "popup,width=560,height=720");
    if (!popup) return; // blocked: let the form open the link page in a new tab
    ev.preventDefault();
    var tokenId = form.getAttribute("data-token-id");
    try {
      popup.document.title = "Signing in…";
      popup.document.body.textContent = "Opening the provider's sign-in…";
    } catch (e) { /* ignore */ }
    say("Waiting for the sign-in in the pop-up window…", "pending");
    if (pending) clearInterval(pending.poll);
    pending = { tokenId: tokenId, popup: popup, poll: null };
    fetch(form.action, {
      method: "POST",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf() },
      credentials: "same-origin"
    }).then(function (res) {
      return res.json().then(function (body) { return { ok: res.ok, status: res.status, body: body }; });
    }).then(function (r) {
      if (r.status === 401) {
        popup.close();
        pending = null;
        say("Your session has ended: sign in again, then click the button again.", "crit");
        sessionEnded();
        return;
      }
      if (r.ok && r.body.location) {
        // A device sign-in: its page shows the code to enter and the result.
        popup.close();
        pending = null;
        window.location.href = r.body.location;
        return;
      }
      if (r.ok && r.body.ready) {
        // A grant without a sign-in (client credentials): the token is ready already.
        popup.close();
        pending = null;
        say("Token obtained. " + (r.body.message || ""), "ok");
        refreshStatus(tokenId);
        return;
      }
      if (!r.ok || !r.body.url) {
        popup.close();
        pending = null;
        say((r.body && r.body.error) || "Could not start the sign-in.", "crit");
        return;
      }
      popup.location.href = r.body.url;
      var mine = pending;
      mine.poll = setInterval(function () {
        if (popup.closed && pending === mine) {
          clearInterval(mine.poll);
          pending = null;
          say("The sign-in window was closed before it finished: nothing changed. Click the button to try again.", "warn");
          refreshStatus(tokenId);
        }
      }, 500);
    }).catch(function () {
      popup.close();
      pending = null;
      say("Could not reach tokenwarden to start the sign-in.", "crit");
    });
  });
})();
