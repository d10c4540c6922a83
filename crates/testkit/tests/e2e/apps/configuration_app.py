"""A plain HTTP app receiving configuration updates (standard library only).

  POST /configuration/<store>/<key>  records {"path": ..., "body": <the JSON update>}, 200
  GET /received                      the records so far, as a JSON array
  /healthz                           200
Listens on 127.0.0.1:$APP_PORT.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _reply(self, status, document):
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/received":
            with LOCK:
                return self._reply(200, RECEIVED)
        self._reply(200, {})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/configuration/"):
            with LOCK:
                RECEIVED.append({"path": self.path, "body": json.loads(body)})
        self._reply(200, {})


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
