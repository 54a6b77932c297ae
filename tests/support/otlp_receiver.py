"""A real OTLP/HTTP traces receiver for ordergrid's tests.

It decodes each ``POST /v1/traces`` body with the OpenTelemetry project's own
protobuf classes (``opentelemetry-proto``, see requirements.txt next to it),
so what it accepts is what any OpenTelemetry collector accepts, and appends
every span to ``--out`` as one JSON line::

    {"traceId", "spanId", "parentSpanId", "name", "kind", "service",
     "attributes": {key: value}, "error": status message or null}

It prints ``READY <port>`` once it listens on 127.0.0.1 (a kernel-chosen port),
answers 200 with an empty ``ExportTraceServiceResponse``, 415 for any other
content type and 400 for a body that is not a request, and runs until its
stdin reaches EOF.

Usage::

    python otlp_receiver.py --out spans.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def spans(request):
    for resource_spans in request.resource_spans:
        attributes = {a.key: value(a.value) for a in resource_spans.resource.attributes}
        service = attributes.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "traceId": span.trace_id.hex(),
                    "spanId": span.span_id.hex(),
                    "parentSpanId": span.parent_span_id.hex() or None,
                    "name": span.name,
                    "kind": KINDS.get(span.kind, "unspecified"),
                    "service": service,
                    "attributes": {a.key: value(a.value) for a in span.attributes},
                    "error": (span.status.message or "error") if span.status.code == 2 else None,
                }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                return self.answer(404, b"not found\n", "text/plain")
            if self.headers.get("content-type", "").split(";")[0].strip() != "application/x-protobuf":
                return self.answer(415, b"protobuf only\n", "text/plain")
            request = ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except DecodeError as e:
                return self.answer(400, f"{e}\n".encode(), "text/plain")
            with lock, open(args.out, "a", encoding="utf-8") as out:
                for span in spans(request):
                    out.write(json.dumps(span) + "\n")
            self.answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
