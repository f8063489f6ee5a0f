"""A real S3 endpoint for the tests: moto's server over HTTP on 127.0.0.1, one per session. It runs in a process of
its own, not a thread: it keeps every object in memory, and the tests measure their own process's memory."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

# Port 0: the server picks a free port and says which; it exits when the test session closes its stdin.
_MOTO = (
    "import sys; from moto.server import ThreadedMotoServer; "
    "server = ThreadedMotoServer('127.0.0.1', 0, verbose=False); server.start(); "
    "print(server.get_host_and_port()[1], flush=True); sys.stdin.read()"
)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}),
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        port = int(proc.stdout.readline() or b"0")
        assert port, "moto's S3 server did not start"
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_client(s3_server: S3Server) -> Iterator[Any]:
    client = s3_server.client()
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh bucket per test, emptied and removed afterwards (moto would otherwise keep its objects in memory)."""
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    for upload in s3_client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3_client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3_client.delete_object(Bucket=name, Key=item["Key"])
    s3_client.delete_bucket(Bucket=name)
