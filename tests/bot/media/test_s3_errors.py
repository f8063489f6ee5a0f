"""botocore's errors, as S3 sends them, land in the bot's error tree with a detail that names the setting to fix."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.media.s3_errors import GONE, STORAGE_BROKEN, translate


def s3_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            # All of botocore's ResponseMetadata keys, as a real response has them.
            "ResponseMetadata": {
                "RequestId": "R1",
                "HostId": "H1",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        operation,
    )


@pytest.mark.parametrize(
    ("error", "in_detail"),
    [
        (s3_error("SlowDown", 503), "SlowDown"),
        (s3_error("InternalError", 500), "InternalError"),
        (s3_error("RequestTimeout", 400), "RequestTimeout"),
        (s3_error("", 502), "502"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "Could not connect"),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), "Read timeout"),
    ],
)
def test_what_a_retry_can_fix_is_transient(error: Exception, in_detail: str) -> None:
    translated = translate(error, action="upload", bucket="media", key="r/a.wav")
    assert isinstance(translated, TransientUpstreamError)
    assert translated.detail.startswith("upload s3://media/r/a.wav: ")
    assert in_detail in translated.detail


@pytest.mark.parametrize(
    ("error", "in_detail"),
    [
        (s3_error("AccessDenied", 403), "check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and the bucket's policy"),
        (s3_error("InvalidAccessKeyId", 403), "the endpoint does not know S3_ACCESS_KEY_ID"),
        (s3_error("SignatureDoesNotMatch", 403), "S3_SECRET_ACCESS_KEY does not belong to S3_ACCESS_KEY_ID"),
        (s3_error("NoSuchBucket", 404), "bucket 'media' does not exist"),
        (s3_error("PermanentRedirect", 301), "set S3_REGION"),
        (NoCredentialsError(), "no usable credentials"),
    ],
)
def test_what_only_the_operator_can_fix_is_permanent_and_says_what_to_check(error: Exception, in_detail: str) -> None:
    translated = translate(error, action="upload", bucket="media", key="r/a.wav")
    assert isinstance(translated, PermanentUpstreamError)
    assert in_detail in translated.detail
    assert translated.user_message == STORAGE_BROKEN


def test_a_bare_404_is_a_missing_object_or_a_missing_bucket() -> None:
    gone = translate(s3_error("404", 404, "HeadObject"), action="read", bucket="media", key="r/a.wav")
    assert isinstance(gone, PermanentUpstreamError)
    assert gone.user_message == GONE
    no_bucket = translate(s3_error("404", 404, "HeadBucket"), action="check", bucket="media")
    assert isinstance(no_bucket, PermanentUpstreamError)
    assert "bucket 'media' does not exist" in no_bucket.detail


def test_our_own_mistakes_and_foreign_errors_pass_through() -> None:
    bug = ParamValidationError(report="Missing required parameter")
    assert translate(bug, action="upload", bucket="media") is bug
    other = ValueError("not botocore's")
    assert translate(other, action="upload", bucket="media") is other
