"""The secret scan on real report folders: median time of redact_folder per folder (a fresh copy each time).

Secrets are the sandbox profile's, or hostile canaries (a URL password with '@', quotes, '<', '&', '%',
non-ASCII, and a multi-line key: the most spellings to look for). Usage:
    .venv/bin/python benchmarks/redact.py OUTPUT_DIR [N]      # OUTPUT_DIR holds <date>/<run>/ report folders
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aias_runbooks.runner import redact
from aias_runbooks.settings import load_environment


def hostile() -> list[str]:
    token = secrets.token_hex(6)
    pem = "\n".join(["-----BEGIN CANARY PRIVATE KEY-----", *(secrets.token_urlsafe(48) for _ in range(4)),
                     "-----END CANARY PRIVATE KEY-----"])
    return [f"postgresql://canary:c@n&ry<'\"%-é:{token}@127.0.0.1:5432/postgres", f"sk_test_{token * 2}", pem]


def main() -> None:
    root, runs = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 7
    folders = sorted(p.parent for p in root.glob("*/*/verdict.json"))
    if not folders:
        raise SystemExit(f"no report folders under {root}")
    sets = {"sandbox": [s.reveal() for s in load_environment("sandbox").secrets().values()], "hostile": hostile()}
    print(f"{'report folder':48} {'MB':>5} {'secrets':>8} {'compile ms':>10} {'scan ms':>8}")
    for folder in folders:
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        for name, values in sets.items():
            redact.compiled.cache_clear()
            start = time.perf_counter()
            redact.redact_text("", values)
            compile_ms = (time.perf_counter() - start) * 1000
            times = []
            for _ in range(runs):
                with tempfile.TemporaryDirectory() as tmp:
                    work = Path(tmp) / "r"
                    shutil.copytree(folder, work)
                    start = time.perf_counter()
                    redact.redact_folder(work, values)
                    times.append((time.perf_counter() - start) * 1000)
            print(f"{folder.name[:48]:48} {size:5.2f} {name:>8} {compile_ms:10.1f} {statistics.median(times):8.1f}")


if __name__ == "__main__":
    main()
