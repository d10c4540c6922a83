"""A plain HTTP app that fails on purpose, for resiliency tests (standard library only).

Every call is counted per key (the second path segment). Paths:
  /flaky/<key>/<n>[/<status>]  fails its first n calls with <status> (default 500), then 200
  /fail/<key>[/<status>]       always fails with <status> (default 500)
  /sleep/<key>/<secs>          waits that long, then 200
  /switch/<key>                fails with 500 while the key is switched to failing
  /set/<key>/<fail|ok>         switches /switch/<key> (not counted)
  /calls/<key>                 {"calls": n}: how many calls the key received (not counted)
  /healthz                     200
Answers are JSON: {"call": n, "failed": bool}. Listens on 127.0.0.1:$APP_PORT.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CALLS = {}
FAILING = set()
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

    def _handle(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.split("?")[0].strip("/").split("/")
        kind, key, args = parts[0], (parts[1] if len(parts) > 1 else ""), parts[2:]
        if kind == "healthz":
            return self._reply(200, {})
        if kind == "calls":
            with LOCK:
                return self._reply(200, {"calls": CALLS.get(key, 0)})
        if kind == "set":
            with LOCK:
                if args and args[0] == "fail":
                    FAILING.add(key)
                else:
                    FAILING.discard(key)
            return self._reply(200, {})
        with LOCK:
            CALLS[key] = CALLS.get(key, 0) + 1
            call = CALLS[key]
            failing = key in FAILING
        status = 200
        if kind == "flaky" and call <= int(args[0]):
            status = int(args[1]) if len(args) > 1 else 500
        elif kind == "fail":
            status = int(args[0]) if args else 500
        elif kind == "switch" and failing:
            status = 500
        elif kind == "sleep":
            time.sleep(float(args[0]))
        self._reply(status, {"call": call, "failed": status != 200})

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
