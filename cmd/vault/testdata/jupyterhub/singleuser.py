"""A stand-in for jupyterhub-singleuser in the vault's JupyterHub test.

Debian's JupyterHub comes without a single-user server (jupyter_server is not
installed here), so the test's spawner runs this: it serves the URL the hub
gave it (the hub polls it to see the server is up), writes the environment
the hub's auth_state_hook set to VAULT_HUB_TEST_ENV, and answers
GET {prefix}vault with what the notebook client sees: the patients list read
with a token from the hub (jhvault.hub_token, the same call a notebook makes
when its token has expired).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])

with open(os.environ["VAULT_HUB_TEST_ENV"], "w") as f:
    json.dump({k: v for k, v in os.environ.items() if k.startswith(("VAULT_", "JUPYTERHUB_", "JHE_"))}, f)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body, status = b"{}", 200
        if self.path.startswith(prefix + "vault"):
            import jhvault

            try:
                c = jhvault.Client.from_hub()
                body = json.dumps({"patients": c.patients().to_dict(orient="records")}, default=str).encode()
            except Exception as e:  # the test prints it
                body, status = json.dumps({"error": repr(e)}).encode(), 500
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        sys.stderr.write("singleuser: " + (args[0] % args[1:]) + "\n")


ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()
