"""A custom handler that misbehaves on purpose, for testing the Functions host stand-in.

The real handler never answers like this; these answers are what the stand-in must treat as the
real Functions host does. Each function (URL path) behaves one way:

  Echo         records the invocation, answers a proper result
  Emit         answers an event in the outputEvents binding
  WrongCase    answers it under "OutputEvents" (the binding is "outputEvents")
  TextPlain    answers 200 with a text/plain body
  Empty        answers 200 with an empty JSON body
  Null         answers 200 with the body null
  BadLogs      answers a log line that is an object
  OutputsArray answers Outputs as an array
  Hang         never answers
  Crash        exits the process
  HttpEcho     (HTTP) answers res = 201, headers X-Echo and Content-Type, body = Data.req as JSON text
  HttpObject   (HTTP) answers res with a JSON object body and no headers
  HttpMissing  (HTTP) answers no res at all
  HttpBadRes   (HTTP) answers res as a bare string
  HttpFails    (HTTP) answers 500
  HttpReturn   (HTTP, $return) answers ReturnValue {"status": 202, "body": "returned"}
  Negotiate    (HTTP) answers res with Data.connection as the body
  Feed         (Event Grid) answers the actions binding: sendToGroup json + sendToAll text
  BadAction    answers an actions binding with an unknown actionName

Every invocation is appended to $FAKE_HANDLER_LOG as one JSON line: function, pid, headers and
the raw body text. A SIGTERM is recorded there too before exiting (the host kills, never asks).
"""

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ["FAKE_HANDLER_LOG"]

EVENT = {
    "id": "emitted-1",
    "eventType": "OrderAccepted",
    "subject": "orders/1",
    "eventTime": "2026-01-01T00:00:00Z",
    "data": {"orderId": "1"},
    "dataVersion": "1.0",
}


def record(entry):
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def on_sigterm(signum, frame):
    record({"signal": "SIGTERM", "pid": os.getpid()})
    sys.exit(0)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, content_type, body):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, "text/plain", "ready")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length).decode("utf-8")
        function = self.path.strip("/")
        record({"function": function, "pid": os.getpid(), "headers": dict(self.headers), "raw": raw})
        result = lambda outputs, logs: json.dumps({"Outputs": outputs, "Logs": logs, "ReturnValue": None})
        if function == "Hang":
            time.sleep(3600)
        elif function == "Crash":
            os._exit(3)
        elif function == "Emit":
            self.answer(200, "application/json", result({"outputEvents": [EVENT]}, ["emitted"]))
        elif function == "WrongCase":
            self.answer(200, "application/json", result({"OutputEvents": [EVENT]}, []))
        elif function == "TextPlain":
            self.answer(200, "text/plain", result({}, []))
        elif function == "Empty":
            self.answer(200, "application/json", "")
        elif function == "Null":
            self.answer(200, "application/json", "null")
        elif function == "BadLogs":
            self.answer(200, "application/json", json.dumps({"Outputs": {}, "Logs": [{"a": 1}]}))
        elif function == "OutputsArray":
            self.answer(200, "application/json", json.dumps({"Outputs": [1], "Logs": []}))
        elif function == "HttpEcho":
            req = json.loads(raw)["Data"]["req"]
            res = {"statusCode": 201, "headers": {"X-Echo": "yes", "Content-Type": "application/json"}, "body": json.dumps(req)}
            self.answer(200, "application/json", result({"res": res}, []))
        elif function == "HttpObject":
            self.answer(200, "application/json", result({"res": {"statusCode": "202", "body": {"a": [1]}}}, []))
        elif function == "HttpMissing":
            self.answer(200, "application/json", result({}, []))
        elif function == "HttpBadRes":
            self.answer(200, "application/json", result({"res": "not a response"}, []))
        elif function == "HttpFails":
            self.answer(500, "application/json", json.dumps({"error": {"message": "broken"}}))
        elif function == "HttpReturn":
            self.answer(200, "application/json", json.dumps({"Outputs": {}, "Logs": [], "ReturnValue": {"status": 202, "body": "returned"}}))
        elif function == "Negotiate":
            connection = json.loads(raw)["Data"]["connection"]
            res = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(connection)}
            self.answer(200, "application/json", result({"res": res}, []))
        elif function == "Feed":
            actions = [
                {"actionName": "sendToGroup", "group": "order-1", "dataType": "json", "data": json.dumps({"orderId": "1", "status": "accepted"})},
                {"actionName": "SENDTOALL", "dataType": "text", "data": "hello all", "excluded": ["c1"]},
            ]
            self.answer(200, "application/json", result({"actions": actions}, []))
        elif function == "BadAction":
            self.answer(200, "application/json", result({"actions": {"actionName": "nope"}}, []))
        else:
            self.answer(200, "application/json; charset=utf-8", result({}, ["echo"]))


signal.signal(signal.SIGTERM, on_sigterm)
server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["FUNCTIONS_CUSTOMHANDLER_PORT"])), Handler)
server.daemon_threads = True
server.serve_forever()
