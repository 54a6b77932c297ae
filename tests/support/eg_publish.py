"""Publish events with the official Python SDK (azure-eventgrid, pinned in requirements.txt).

ordergrid's tests use this to check the Event Grid emulator against the real client rather than
against a hand-written imitation of it.

Usage::

    python eg_publish.py --endpoint URL --auth key|sas|entra [--key KEY] --events FILE
                         --schema eventgrid|cloudevents [--sas-expiry-seconds N]
                         [--max-retries N] [--ca-file PEM]

``--events`` is a JSON array. For ``--schema eventgrid`` each element is an Event Grid schema
event (``id``, ``subject``, ``eventType``, ``eventTime``, ``data``, ``dataVersion``, optional
``topic``) and becomes an ``azure.eventgrid.EventGridEvent``; for ``--schema cloudevents`` each
element is a CloudEvents 1.0 JSON object and becomes an ``azure.core.messaging.CloudEvent`` (via
``CloudEvent.from_dict``, so ``data_base64`` and extension attributes work). All events go out
in ONE ``send`` call, i.e. one HTTP request.

``--auth key`` uses ``AzureKeyCredential(KEY)``. ``--auth sas`` mints a token with
``azure.eventgrid.generate_sas(endpoint, KEY, now + N s)`` (N = ``--sas-expiry-seconds``,
default 3600, may be negative for an already-expired token) and uses ``AzureSasCredential``.
``--auth entra`` uses azure-identity's ``ManagedIdentityCredential()``, which takes
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` from the environment (App Service's managed
identity protocol) and sends the token as ``Authorization: Bearer``; azure-core refuses to send
it over anything but https. ``--ca-file`` is the CA the https endpoint's certificate must chain
to (azure-core's ``connection_verify``), instead of the public roots.

Output: exactly one JSON line on stdout, ``{"ok": true}`` or
``{"ok": false, "status": <int>, "error": "<message>"}``; ``status`` is 0 when no HTTP response
was received (connection refused, ...). Exit code 0 either way; 2 on usage errors (argparse),
bad ``--events`` files or events the SDK refuses to build. Neither the key nor the token is
ever printed.

``--max-retries`` defaults to 0 (the SDK's own default is 3 retries with exponential backoff on
408/429/5xx and connection errors): a test wants exactly one request per run and a prompt
answer. It is passed per call as azure-core's ``retry_total``, because the top-level
``EventGridPublisherClient`` does not forward constructor kwargs to the Event Grid Basic client.

What the SDK (azure-eventgrid 4.22.1, azure-core 1.41.0) puts on the wire
-------------------------------------------------------------------------
Read from ``azure/eventgrid/_legacy/_helpers.py`` (``_build_request``, ``generate_sas``),
``_legacy/_publisher_client.py`` (``send``) and ``_patch.py``, and confirmed by capturing the
requests with a local HTTP server:

* URL: the endpoint EXACTLY as given plus ``?api-version=2018-01-01``. Nothing is appended to
  the path: pass ``http://host:port/api/events`` to hit ``/api/events``. Without
  ``namespace_topic`` the client is the Event Grid Basic (custom topic) client.
* Method ``POST``, HTTP/1.1, body is ``json.dumps`` of a JSON ARRAY in both schemas (even for
  a single event), ``Content-Length`` set.
* ``Content-Type``: ``application/json; charset=utf-8`` for Event Grid events;
  ``application/cloudevents-batch+json; charset=utf-8`` for CloudEvents.
* Auth header: ``aeg-sas-key: <key>`` (AzureKeyCredentialPolicy) or ``aeg-sas-token: <token>``
  (EventGridSasCredentialPolicy, the bare token, no ``SharedAccessSignature`` prefix).
* Other headers: ``x-ms-client-request-id: <uuid1>``, ``User-Agent:
  azsdk-python-eventgrid/4.10.0 Python/3.11.7 (...)`` (4.10.0 is the version of the bundled
  ``_legacy`` Event Grid Basic client, not of the 4.22.1 package), ``Accept: */*``,
  ``Accept-Encoding: gzip, deflate``, ``Connection: keep-alive``.
* The SDK re-serialises times: ``"eventTime": "2024-05-01T12:00:00Z"`` goes out as
  ``"2024-05-01T12:00:00.000Z"``, and so does a CloudEvent ``time``. A CloudEvent without
  ``time`` is sent without one (the JS SDK fills in "now"); extension attributes come first;
  an Event Grid event with ``"data": null`` is sent WITHOUT a ``data`` member, and
  ``metadataVersion`` is dropped.
* Plain ``http://`` works for key and SAS credentials; only bearer tokens (TokenCredential)
  are refused on non-https URLs (azure-core ``_enforce_https``).
* SAS token format (``generate_sas``): ``r=quote(endpoint + "?apiVersion=2018-01-01")`` (note
  camelCase ``apiVersion``), ``e=quote(str(expiry))`` e.g. ``2026-11-22 19:31:54.480625+00:00``
  (microseconds included; no offset at all for a naive datetime),
  ``s=quote(base64(HMAC-SHA256(b64decode(key), "r=..&e..")))``, all with
  ``quote(safe="~()*!.'")``: uppercase hex; ``/ : ? = +`` and space (``%20``) encoded.

Captured requests (endpoint ``http://127.0.0.1:PORT/api/events``; key and signature redacted;
headers in wire order):

Event Grid schema, ``--auth key``::

    POST /api/events?api-version=2018-01-01 HTTP/1.1
    Host: 127.0.0.1:PORT
    User-Agent: azsdk-python-eventgrid/4.10.0 Python/3.11.7 (Linux-...-x86_64-with-glibc2.36)
    Accept-Encoding: gzip, deflate
    Accept: */*
    Connection: keep-alive
    Content-Type: application/json; charset=utf-8
    Content-Length: 156
    x-ms-client-request-id: fde00612-e6a2-11f1-ab44-02fc00000001
    aeg-sas-key: <key>

    [{"id": "e-1", "subject": "orders/1", "data": {"orderId": "1"}, "eventType": "Order.Placed",
    "eventTime": "2024-05-01T12:00:00.000Z", "dataVersion": "1.0"}]

Event Grid schema, ``--auth sas``: identical except the auth header::

    aeg-sas-token: r=http%3A%2F%2F127.0.0.1%3APORT%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=2026-11-22%2019%3A31%3A54.480625%2B00%3A00&s=<sig, %2F %2B %3D encoded>

CloudEvents, ``--auth key`` / ``--auth sas``: as above with
``Content-Type: application/cloudevents-batch+json; charset=utf-8``, ``Content-Length: 206``
and the body::

    [{"id": "c-1", "source": "/orders", "data": {"orderId": "1"}, "type": "Order.Placed",
    "time": "2024-05-01T12:00:00.000Z", "specversion": "1.0", "datacontenttype":
    "application/json", "subject": "orders/1"}]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import Any

from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import AzureError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas
from azure.identity import ManagedIdentityCredential


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True, help="full publish URL, e.g. http://127.0.0.1:PORT/api/events")
    p.add_argument("--auth", required=True, choices=["key", "sas", "entra"])
    p.add_argument("--key", help="the topic's base64 access key (key and sas)")
    p.add_argument("--events", required=True, help="file holding a JSON array of events")
    p.add_argument("--schema", required=True, choices=["eventgrid", "cloudevents"])
    p.add_argument("--sas-expiry-seconds", type=int, default=3600, help="SAS lifetime; negative = expired")
    p.add_argument("--max-retries", type=int, default=0, help="azure-core retry_total (SDK default: 3)")
    p.add_argument("--ca-file", help="CA certificate (PEM) to trust for an https endpoint")
    args = p.parse_args(argv)
    if args.auth != "entra" and not args.key:
        p.error("--key is required for --auth key and --auth sas")
    return args


def build_events(raw: Any, schema: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ValueError("--events must hold a JSON array")
    if schema == "cloudevents":
        return [CloudEvent.from_dict(e) for e in raw]
    events = []
    for e in raw:
        optional = {k: e[j] for k, j in (("id", "id"), ("event_time", "eventTime"), ("topic", "topic")) if j in e}
        events.append(EventGridEvent(e["subject"], e["eventType"], e.get("data"), e["dataVersion"], **optional))
    return events


def failure(exc: BaseException) -> dict[str, Any]:
    # The top-level client re-raises a 404 as a ResourceNotFoundError without a status code,
    # chained to the original HttpResponseError: find the status anywhere along the chain.
    status = 0
    cur: BaseException | None = exc
    while cur is not None:
        code = getattr(cur, "status_code", None)
        if isinstance(code, int):
            status = code
            break
        cur = cur.__cause__ or cur.__context__
    message = exc.message if isinstance(exc, AzureError) else str(exc)
    return {"ok": False, "status": status, "error": str(message)}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        with open(args.events, encoding="utf-8") as f:
            events = build_events(json.load(f), args.schema)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"eg_publish.py: bad --events file {args.events!r}: {e!r}", file=sys.stderr)
        return 2

    credential: Any
    if args.auth == "key":
        credential = AzureKeyCredential(args.key)
    elif args.auth == "sas":
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=args.sas_expiry_seconds)
        credential = AzureSasCredential(generate_sas(args.endpoint, args.key, expiry))
    else:
        credential = ManagedIdentityCredential()

    # The SDK hands send()'s kwargs to its CloudEvent model too, which logs "retry_total is not
    # a known attribute ... and will be ignored" for every event. Harmless; keep stderr clean.
    logging.getLogger("azure.eventgrid._legacy._generated._serialization").setLevel(logging.ERROR)
    client = EventGridPublisherClient(args.endpoint, credential)
    try:
        options: dict[str, Any] = {"retry_total": args.max_retries}
        if args.ca_file:
            options["connection_verify"] = args.ca_file
        client.send(events, **options)
        result: dict[str, Any] = {"ok": True}
    except AzureError as e:  # HttpResponseError and transport errors alike
        result = failure(e)
    finally:
        client.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
