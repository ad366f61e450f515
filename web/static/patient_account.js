// JupyterHealth Vault: deleting the account, after a passkey
// re-authentication. It uses the ceremony helpers of webauthn.js (loaded
// first) and handles no secret beyond the page's CSRF token.
"use strict";
(function () {
  function status(msg, isError) {
    var el = document.getElementById("status");
    if (!el) return;
    el.textContent = msg;
    el.className = "status" + (isError ? " error" : "");
  }
  function wire() {
    var form = document.getElementById("delete-form");
    var w = window.vaultWebAuthn;
    if (!form || !w) return;
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var btn = form.querySelector("button");
      var typed = form.querySelector('input[name="confirm"]').value.trim().replace(/\s+/g, " ").toLowerCase();
      if (typed !== form.getAttribute("data-confirm")) {
        status('Type "' + form.getAttribute("data-confirm") + '" to confirm.', true);
        return;
      }
      if (!window.PublicKeyCredential) {
        status("This browser does not support passkeys. Use a current browser.", true);
        return;
      }
      btn.disabled = true;
      status("Follow your device's prompt to unlock your passkey…", false);
      try {
        var opts = await w.post("/webauthn/account/delete/begin", { confirm: typed });
        var cred = await navigator.credentials.get(w.requestOptions(opts));
        var res = await w.post("/webauthn/account/delete/finish", w.assertionJSON(cred));
        status("Deleted. Loading…", false);
        window.location.assign(res.redirect || "/signin");
      } catch (e) {
        var msg = (e && e.message) || "Something went wrong. Try again.";
        if (e && e.name === "NotAllowedError") msg = "The passkey request was cancelled or timed out. Nothing was deleted.";
        status(msg, true);
        btn.disabled = false;
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
