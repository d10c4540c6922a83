"""A plain HTTP app for invocation tests (standard library only).

Every request is answered with a JSON echo of what arrived: method, path, query, headers
and body. Special paths:
  /status/<code>  replies with that status and an echo body plus header x-reply: <code>
  /count          streams the request body in chunks and replies with its length only,
                  so huge bodies never sit in memory
  /sleep/<secs>   waits that long, then answers like any other path
  /healthz        200
  GET /dapr/subscribe  a v2 `routes` subscription document (topic `orders` on pubsub
                  `pubsub`), as an app subscribing programmatically returns it
Listens on 127.0.0.1:$APP_PORT.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


SUBSCRIPTIONS = [
    {
        "pubsubname": "pubsub",
        "topic": "orders",
        "routes": {
            "rules": [{"match": 'event.type == "order.big"', "path": "/orders/big"}],
            "default": "/orders",
        },
        "deadLetterTopic": "poison",
        "metadata": {"rawPayload": "true"},
    }
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        length = self.headers.get("content-length")
        if length is not None:
            return self.rfile.read(int(length))
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _count(self):
        total = 0
        length = self.headers.get("content-length")
        if length is not None:
            remaining = int(length)
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                total += len(chunk)
                remaining -= len(chunk)
            return total
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return total
            while size:
                chunk = self.rfile.read(min(size, 1 << 16))
                total += len(chunk)
                size -= len(chunk)
            self.rfile.readline()

    def _reply(self, status, payload, extra_headers=()):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        path, _, query = self.path.partition("?")
        if path == "/healthz":
            return self._reply(200, {"ok": True})
        if path == "/dapr/subscribe" and self.command == "GET":
            return self._reply(200, SUBSCRIPTIONS)
        if path == "/count":
            return self._reply(200, {"bytes": self._count()})
        body = self._body()
        if path.startswith("/sleep/"):
            time.sleep(float(path.rsplit("/", 1)[1]))
        echo = {
            "method": self.command,
            "path": path,
            "query": query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return self._reply(code, echo, [("x-reply", str(code))])
        return self._reply(200, echo, [("x-app", "http-app")])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
