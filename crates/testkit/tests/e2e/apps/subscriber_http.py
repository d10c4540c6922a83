"""A pub/sub subscriber over plain HTTP, for delivery tests (standard library only).

Environment:
  APP_PORT       listens on 127.0.0.1:$APP_PORT
  EVENTS_FILE    every delivery is appended to this file as one JSON line
                 {"path": <request path>, "event": <the CloudEvent received>}, flushed
                 before the answer is sent, so a SIGKILL loses no answered delivery
  SUBSCRIPTIONS  the JSON document `GET /dapr/subscribe` returns (default: [])
  FAIL_PATHS     comma-separated paths answered 500 (after recording the delivery)

Every other POST is recorded and answered 200 {"status": "SUCCESS"}; /healthz answers 200.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUBSCRIPTIONS = json.loads(os.environ.get("SUBSCRIPTIONS", "[]"))
FAIL_PATHS = {path for path in os.environ.get("FAIL_PATHS", "").split(",") if path}
EVENTS = open(os.environ["EVENTS_FILE"], "a", encoding="utf-8")
LOCK = threading.Lock()


def record(path, body):
    try:
        event = json.loads(body)
    except ValueError:
        event = {"unparsed": body.decode("utf-8", "replace")}
    line = json.dumps({"path": path, "event": event}) + "\n"
    with LOCK:
        EVENTS.write(line)
        EVENTS.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle holds the
    # body until the sidecar's delayed ACK (about 40 ms per delivery).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

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

    def do_GET(self):
        path = self.path.partition("?")[0]
        if path == "/dapr/subscribe":
            return self._reply(200, SUBSCRIPTIONS)
        if path == "/healthz":
            return self._reply(200, {"ok": True})
        return self._reply(404, {"error": "not found"})

    def do_POST(self):
        path = self.path.partition("?")[0]
        record(path, self._body())
        if path in FAIL_PATHS:
            return self._reply(500, {"error": "this route always fails"})
        return self._reply(200, {"status": "SUCCESS"})


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
