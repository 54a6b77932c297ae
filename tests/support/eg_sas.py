"""Print a SAS token minted by the official Python SDK (``azure.eventgrid.generate_sas``).

ordergrid's tests (tests/sas_sdk_tokens.rs) verify these tokens with
``ordergrid::eventgrid::sas::verify``, so the verifier is checked against what the SDK really
produces, not against our own idea of it.

Usage::

    python eg_sas.py --resource URL --key KEY --expiry-seconds N [--naive-expiry]

The token is ``generate_sas(URL, KEY, now_utc + N s)``, printed alone on one line (N may be
negative for an already-expired token). ``generate_sas`` appends ``?apiVersion=2018-01-01``
to URL, encodes with ``urllib.parse.quote(safe="~()*!.'")`` and writes the expiry as
``str(datetime)``: ``2026-01-01 00:00:00.123456+00:00`` for an aware datetime. With
``--naive-expiry`` the expiry is a naive UTC datetime, as in the common
``datetime.utcnow() + timedelta(...)`` idiom, which ``str()`` writes without an offset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from azure.eventgrid import generate_sas


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resource", required=True, help="topic endpoint URL the token is for")
    p.add_argument("--key", required=True, help="the topic's base64 access key")
    p.add_argument("--expiry-seconds", required=True, type=int, help="lifetime; negative = expired")
    p.add_argument("--naive-expiry", action="store_true", help="pass a naive UTC datetime")
    args = p.parse_args(argv)

    expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=args.expiry_seconds)
    if args.naive_expiry:
        expiry = expiry.replace(tzinfo=None)
    print(generate_sas(args.resource, args.key, expiry), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
