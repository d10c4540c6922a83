"""An input binding app built with the official SDK's dapr.ext.grpc.App, for the bindings
tests.

Environment:
  APP_PORT     listens on 127.0.0.1:$APP_PORT
  BINDINGS     comma-separated binding names, each registered with @app.binding(name)
  EVENTS_FILE  every event is appended to this file as one JSON line
               {"path": <binding name>, "event": {"data": <UTF-8 text>, "metadata":
               <the binding metadata>}}, flushed before the handler returns
"""

import json
import os
import threading

from dapr.ext.grpc import App, BindingRequest

EVENTS = open(os.environ["EVENTS_FILE"], "a", encoding="utf-8")
LOCK = threading.Lock()

app = App()


def handler(name):
    def record(request: BindingRequest) -> None:
        event = {"data": request.text(), "metadata": dict(request.binding_metadata)}
        with LOCK:
            EVENTS.write(json.dumps({"path": name, "event": event}) + "\n")
            EVENTS.flush()

    return record


for binding in filter(None, os.environ["BINDINGS"].split(",")):
    app.binding(binding)(handler(binding))


if __name__ == "__main__":
    app.run(int(os.environ["APP_PORT"]), "127.0.0.1")
