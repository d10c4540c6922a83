"""A pub/sub subscriber built with the official SDK's dapr.ext.grpc.App, for delivery tests.

Subscriptions on pubsub `pubsub`:
  plain   one handler, no routing rules (daprd calls it with an empty path)
  orders  a rule route `event.type == "big"` (handler big_orders) and a default route
          (handler orders, registered with disable_topic_validation so the SDK sets it)

Every delivery is appended to $EVENTS_FILE as one JSON line
{"path": <handler name>, "event": {id, type, source, topic, pubsubname, datacontenttype,
data}}, flushed before the handler returns. Listens on 127.0.0.1:$APP_PORT.
"""

import json
import os
import threading

from dapr.ext.grpc import App, Rule, SubscriptionMessage

EVENTS = open(os.environ["EVENTS_FILE"], "a", encoding="utf-8")
LOCK = threading.Lock()

app = App()


def record(handler, event: SubscriptionMessage):
    line = json.dumps(
        {
            "path": handler,
            "event": {
                "id": event.id(),
                "type": event.type(),
                "source": event.source(),
                "topic": event.topic(),
                "pubsubname": event.pubsub_name(),
                "datacontenttype": event.data_content_type(),
                "data": event.data(),
            },
        }
    )
    with LOCK:
        EVENTS.write(line + "\n")
        EVENTS.flush()


@app.subscribe(pubsub_name="pubsub", topic="plain")
def plain(event: SubscriptionMessage) -> None:
    record("plain", event)


@app.subscribe(pubsub_name="pubsub", topic="orders", disable_topic_validation=True)
def orders(event: SubscriptionMessage) -> None:
    record("orders", event)


@app.subscribe(pubsub_name="pubsub", topic="orders", rule=Rule('event.type == "big"', 1))
def big_orders(event: SubscriptionMessage) -> None:
    record("big_orders", event)


if __name__ == "__main__":
    app.run(int(os.environ["APP_PORT"]), "127.0.0.1")
