"""What the benchmarks ran on: printed beside every table in docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import django
from django.db import connection


def machine_description() -> str:
    """CPUs, RAM, database engine and version, Python and Django (needs django.setup())."""
    ram_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
    except OSError:
        pass
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            engine = f"PostgreSQL {cursor.fetchone()[0]}"
        else:
            cursor.execute("select sqlite_version()")
            engine = f"SQLite {cursor.fetchone()[0]}"
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPUs (nproc) {cpu}, {ram_kb / 1024 / 1024:.1f} GiB RAM, {engine}, "
        f"Python {platform.python_version()}, Django {django.get_version()}"
    )
