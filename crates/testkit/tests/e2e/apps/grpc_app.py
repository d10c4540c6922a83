"""A gRPC app built with the official SDK's dapr.ext.grpc.App, for invocation tests.

Methods:
  echo  replies with JSON describing the call (data, content type, metadata) and a
        response header x-app: grpc-app. (The SDK's servicer hands user code only the
        data, content type and metadata of OnInvoke, not its HTTP extension.)
  proto replies whether the request carried a packed protobuf message and which text it
        held, as a google.protobuf.StringValue (so the reply is packed too)
  fail  raises, so gRPC answers UNKNOWN with the exception text
Listens on 127.0.0.1:$APP_PORT.
"""

import json
import os

import grpc
from google.protobuf import wrappers_pb2
from dapr.ext.grpc import App, InvokeMethodRequest, InvokeMethodResponse

app = App()


@app.method(name="echo")
def echo(request: InvokeMethodRequest) -> InvokeMethodResponse:
    metadata = {key: value for key, value in request.get_metadata() if not key.startswith("grpc-")}
    payload = {
        "data": request.text(),
        "content_type": request.content_type,
        "metadata": metadata,
    }
    return InvokeMethodResponse(json.dumps(payload), "application/json", headers=(("x-app", "grpc-app"),))


@app.method(name="proto")
def proto(request: InvokeMethodRequest) -> InvokeMethodResponse:
    text = ""
    if request.is_proto():
        value = wrappers_pb2.StringValue()
        request.unpack(value)
        text = value.value
    return InvokeMethodResponse(wrappers_pb2.StringValue(value=f"proto={request.is_proto()} text={text}"))


@app.method(name="fail")
def fail(request: InvokeMethodRequest):
    raise ValueError("the fail method always fails")


if __name__ == "__main__":
    app.run(int(os.environ["APP_PORT"]), "127.0.0.1")
