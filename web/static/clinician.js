// JupyterHealth Vault: the clinician's hub-key form. A key is confirmed
// with the clinician's passkey: the server makes the key's ledger entry,
// and the challenge is the hash of that entry and a server nonce, so the
// signature covers exactly this key. It uses the helpers webauthn.js
// exposes, and runs after it.
"use strict";
(function () {
  function status(msg, isError) {
    var el = document.getElementById("status");
    if (!el) return;
    el.textContent = msg;
    el.className = "status" + (isError ? " error" : "");
  }
  function explain(e) {
    if (e && e.name === "NotAllowedError") return "The passkey request was cancelled or timed out. Try again.";
    if (e && e.name === "SecurityError") return "Your browser refused the passkey request for this address.";
    return (e && e.message) || "Something went wrong. Try again.";
  }
  async function addKey(form) {
    var w = window.vaultWebAuthn;
    var fd = new FormData(form);
    var opts = await w.post("/webauthn/clinician/keys/begin", {
      label: fd.get("label") || "", recipient: fd.get("recipient") || "",
    });
    var cred = await navigator.credentials.get(w.requestOptions(opts));
    return w.post("/webauthn/clinician/keys/finish", w.assertionJSON(cred));
  }
  function wire() {
    var form = document.querySelector('form[data-webauthn="clinician-key"]');
    if (!form) return;
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var btn = form.querySelector('button[type="submit"]');
      if (!window.PublicKeyCredential || !window.vaultWebAuthn) {
        status("This browser does not support passkeys. Use a current browser.", true);
        return;
      }
      btn.disabled = true;
      status("Follow your device's prompt to confirm the key with your passkey…", false);
      try {
        var res = await addKey(form);
        status("Done. Loading…", false);
        window.location.assign(res.redirect || "/clinician/keys");
      } catch (e) {
        status(explain(e), true);
        btn.disabled = false;
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
