// JupyterHealth Vault: the passkey ceremonies. This is the only script the
// vault's pages run; every other page works without JavaScript. It talks to
// /webauthn/* on the same origin and never handles a secret beyond the
// page's CSRF token.
"use strict";
(function () {
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }
  async function post(path, body) {
    var headers = { "Content-Type": "application/json" };
    var tok = csrfToken();
    if (tok) headers["X-CSRF-Token"] = tok;
    var resp = await fetch(path, {
      method: "POST", headers: headers, body: JSON.stringify(body),
      credentials: "same-origin", cache: "no-store",
    });
    var data = {};
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) {
      var err = new Error(data.message || "The vault refused the request (" + resp.status + ").");
      err.status = resp.status;
      err.code = data.code;
      throw err;
    }
    return data;
  }

  // creationOptions turns the server's JSON into the browser's options.
  function creationOptions(opts) {
    var pk = opts.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return { publicKey: pk };
  }
  function requestOptions(opts) {
    var pk = opts.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return { publicKey: pk };
  }
  function attestationJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        clientDataJSON: bufToB64url(r.clientDataJSON),
        attestationObject: bufToB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [],
      },
    };
  }
  function assertionJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        clientDataJSON: bufToB64url(r.clientDataJSON),
        authenticatorData: bufToB64url(r.authenticatorData),
        signature: bufToB64url(r.signature),
        userHandle: r.userHandle ? bufToB64url(r.userHandle) : undefined,
      },
    };
  }

  async function register(beginPath, finishPath, body) {
    var opts = await post(beginPath, body);
    var cred = await navigator.credentials.create(creationOptions(opts));
    return post(finishPath, attestationJSON(cred));
  }
  async function signin(next) {
    var opts = await post("/webauthn/signin/begin", { next: next || "" });
    var cred = await navigator.credentials.get(requestOptions(opts));
    return post("/webauthn/signin/finish", assertionJSON(cred));
  }

  // grant signs a grant with the user's passkey: the server makes the
  // grant from the form, and the challenge is the hash of that grant and a
  // server nonce, so the signature covers exactly what the form says.
  async function grant(form) {
    var fd = new FormData(form);
    var body = {
      clinician: fd.get("clinician") || "",
      schemas: fd.getAll("schemas"),
      data_from: fd.get("data_from") || "",
      data_to: fd.get("data_to") || "",
      expires_on: fd.get("expires_on") || "",
      purpose: fd.get("purpose") || "",
      fhir: fd.get("fhir") === "yes",
    };
    var opts = await post("/webauthn/grant/begin", body);
    var cred = await navigator.credentials.get(requestOptions(opts));
    return post("/webauthn/grant/finish", assertionJSON(cred));
  }

  // appGrant signs an application's access (OAuth) the same way: the
  // server makes the app grant from the form and the pending request.
  async function appGrant(form) {
    var fd = new FormData(form);
    var body = {
      id: form.getAttribute("data-id") || "",
      schemas: fd.getAll("schemas"),
      data_from: fd.get("data_from") || "",
      data_to: fd.get("data_to") || "",
      expires_on: fd.get("expires_on") || "",
    };
    var opts = await post("/webauthn/oauth/begin", body);
    var cred = await navigator.credentials.get(requestOptions(opts));
    return post("/webauthn/oauth/finish", assertionJSON(cred));
  }

  function status(msg, isError) {
    var el = document.getElementById("status");
    if (!el) return;
    el.textContent = msg;
    el.className = "status" + (isError ? " error" : "");
  }
  function explain(e) {
    if (e && e.name === "NotAllowedError") return "The passkey request was cancelled or timed out. Try again.";
    if (e && e.name === "InvalidStateError") return "This device already has a passkey for your account.";
    if (e && e.name === "SecurityError") return "Your browser refused the passkey request for this address.";
    return (e && e.message) || "Something went wrong. Try again.";
  }
  async function run(button, work, busyMsg) {
    if (!window.PublicKeyCredential) {
      status("This browser does not support passkeys. Use a current browser.", true);
      return;
    }
    button.disabled = true;
    status(busyMsg, false);
    try {
      var res = await work();
      status("Done. Loading…", false);
      window.location.assign(res.redirect || "/");
    } catch (e) {
      status(explain(e), true);
      button.disabled = false;
    }
  }

  function wire() {
    var b = document.querySelector('[data-webauthn="signin"]');
    if (b) b.addEventListener("click", function () {
      run(b, function () { return signin(b.getAttribute("data-next")); }, "Follow your device's prompt to unlock your passkey…");
    });
    var enrol = document.querySelector('form[data-webauthn="enrol"]');
    if (enrol) enrol.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = enrol.querySelector("button");
      var label = enrol.querySelector('input[name="label"]').value;
      run(btn, function () {
        return register("/webauthn/enrol/begin", "/webauthn/enrol/finish", { token: enrol.getAttribute("data-token"), label: label });
      }, "Follow your device's prompt to create your passkey…");
    });
    var add = document.querySelector('form[data-webauthn="add"]');
    if (add) add.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = add.querySelector("button");
      var label = add.querySelector('input[name="label"]').value;
      run(btn, function () {
        return register("/webauthn/passkeys/begin", "/webauthn/passkeys/finish", { label: label });
      }, "Follow your device's prompt to create the new passkey…");
    });
    var gf = document.querySelector('form[data-webauthn="grant"]');
    if (gf) gf.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = gf.querySelector('button[type="submit"]');
      run(btn, function () { return grant(gf); }, "Follow your device's prompt to sign the grant with your passkey…");
    });
    var of = document.querySelector('form[data-webauthn="oauth"]');
    if (of) of.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = of.querySelector('button[type="submit"]');
      run(btn, function () { return appGrant(of); }, "Follow your device's prompt to sign with your passkey…");
    });
  }

  // Exposed for the end-to-end tests, which replay ceremonies by hand.
  window.vaultWebAuthn = {
    post: post, creationOptions: creationOptions, requestOptions: requestOptions,
    attestationJSON: attestationJSON, assertionJSON: assertionJSON,
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
