#!/usr/bin/env python3
"""Splits an emulator profile by the task each sample's stack passes through.

A flat profile (`perf report --no-children`) names the functions that burn the CPU but not whose
work they do: the allocator's and the kernel's samples belong to every task. This sorts each
sample into the first of these its stack (leaf to root) passes through, or its thread, and prints
each share of all samples:

  journal writer       the journal's writer thread (write, checksum, fdatasync)
  indexer              the dashboard's indexer (activity::indexer)
  publish handler      the publish API (parse, stamp, spool)
  dispatcher loop      a subscription's dispatcher (read the spool, match, build requests)
  attempt task         one delivery attempt (reqwest, up to the connection)
  client connection    hyper's client connections (writing requests, reading answers)
  server connection    the HTTP server's connections (reading requests, writing answers)

Usage, with a profile recorded with call graphs (see BENCHMARKS.md, issue 15):
  perf record -e cpu-clock -F 299 --call-graph dwarf,32768 -p <emulator pid> -- sleep 8
  perf script -F comm,ip,sym | bench/perf_tasks.py
"""

import collections
import sys

TASKS = [
    ("indexer", "run_indexer_until_stopped"),
    ("publish handler", "emulator::api::publish::publish"),
    ("dispatcher loop", "Dispatcher::run_until_stopped"),
    ("attempt task", "Dispatcher::start"),
    ("client connection", "hyper::proto::h1::role::Client"),
    ("server connection", "http_server::serve"),
]


def task(thread, stack):
    if thread.startswith("journal-writer"):
        return "journal writer"
    for name, marker in TASKS:
        if any(marker in frame for frame in stack):
            return name
    return "other"


def samples(lines):
    """(thread, frames) per sample of `perf script -F comm,ip,sym` output."""
    thread, stack = None, []
    for line in lines:
        if not line.strip():
            if thread is not None:
                yield thread, stack
            thread, stack = None, []
        elif not line[0].isspace():
            thread = line.strip()
        else:
            parts = line.strip().split(None, 1)
            stack.append(parts[-1])
    if thread is not None:
        yield thread, stack


def main():
    counts = collections.Counter(task(t, s) for t, s in samples(sys.stdin))
    total = sum(counts.values())
    if not total:
        sys.exit("no samples on standard input (perf script -F comm,ip,sym)")
    print(f"# {total} samples, split by task")
    for name, count in counts.most_common():
        print(f"{100 * count / total:7.2f}%  {name}")


if __name__ == "__main__":
    main()
