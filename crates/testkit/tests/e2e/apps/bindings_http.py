"""An HTTP server for the bindings tests (standard library only): the app of input
bindings (daprd probes it with OPTIONS, then POSTs each event) and the target of the
`bindings.http` output binding.

Environment:
  APP_PORT       listens on 127.0.0.1:$APP_PORT
  EVENTS_FILE    every request is appended to this file as one JSON line
                 {"path": <path without query>, "event": {"method", "query", "headers"
                 (names lower-cased), "body" (UTF-8 text)}}, flushed before the answer
  NOT_LISTENING  comma-separated paths whose OPTIONS is answered 404 (the app does not
                 listen to those bindings)
  FAIL_FIRST     comma-separated paths whose first POST is answered 500

Answers: OPTIONS 200 (empty); a path ending in `/status/<code>` that status; every other
request 200 with the JSON body {"method": ..., "path": ...} and the header
`X-Reply: from-app`.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def paths(name):
    return {path for path in os.environ.get(name, "").split(",") if path}


NOT_LISTENING = paths("NOT_LISTENING")
FAIL_FIRST = paths("FAIL_FIRST")
FAILED = set()
EVENTS = open(os.environ["EVENTS_FILE"], "a", encoding="utf-8")
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _body(self):
        length = self.headers.get("content-length")
        if length is not None:
            return self.rfile.read(int(length))
        data = bytearray()
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        return bytes(data)

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        path, _, query = self.path.partition("?")
        body = self._body()
        event = {
            "method": self.command,
            "query": query,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK:
            EVENTS.write(json.dumps({"path": path, "event": event}) + "\n")
            EVENTS.flush()
            fail = self.command == "POST" and path in FAIL_FIRST and path not in FAILED
            if fail:
                FAILED.add(path)
        if self.command == "OPTIONS":
            return self._reply(404 if path in NOT_LISTENING else 200)
        if fail:
            return self._reply(500, b'{"error": "first delivery refused"}')
        if "/status/" in path:
            return self._reply(int(path.rsplit("/status/", 1)[1]), b"status page")
        reply = json.dumps({"method": self.command, "path": path}).encode()
        self._reply(
            200,
            reply,
            [("content-type", "application/json"), ("x-reply", "from-app")],
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
