"""`bot bench media` runs for real (small files with --quick) and reports both uploaders' figures."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path


async def test_quick_media_bench_compares_our_upload_with_boto3s(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "bench", "media", "--quick", "--output", str(tmp_path),
        env=dict(os.environ), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    (line,) = [json.loads(text) for text in out.decode().splitlines() if text.startswith("{")]
    assert line["scenario"] == "media"
    assert [row["file"] for row in line["rows"]] == ["20 MB", "50 MB"]
    for row in line["rows"]:
        assert row["ours MB/s"] > 0
        assert row["boto3 upload_fileobj MB/s"] > 0
        assert row["ours / boto3"].endswith("%")
        assert 0 <= row["ours peak RSS growth MiB"] < 64
    assert [target.split(":")[0] for target in line["targets"]] == [
        "our upload >= 80% of boto3 upload_fileobj's MB/s",
        "peak RSS growth during our upload <= 64 MiB",
    ]
    assert "## media" in (tmp_path / "RESULTS.md").read_text()
    assert (tmp_path / "results" / "media.json").exists()
