"""botocore's errors in the bot's error tree: what a retry can fix is transient; what only the operator can fix
(credentials, bucket, region) is permanent, and its detail says which setting to look at."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from bot.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError

SERVICE = "S3"
STORAGE_BROKEN = (
    "I couldn't store or read the file: the bot's file storage is not set up right. Please tell whoever runs this bot."
)
GONE = "That file is no longer stored here; share it again."

# Codes S3 (and MinIO, R2) answer when trying again later can work; botocore has already retried them a few times.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "XMinioServerNotInitialized",
    }
)

_OPERATOR_HINTS = {
    "AccessDenied": "access denied: the credentials may not use bucket {bucket!r}; check S3_ACCESS_KEY_ID, "
    "S3_SECRET_ACCESS_KEY and the bucket's policy",
    "403": "access denied: the credentials may not use bucket {bucket!r}; check S3_ACCESS_KEY_ID, "
    "S3_SECRET_ACCESS_KEY and the bucket's policy",
    "InvalidAccessKeyId": "the endpoint does not know S3_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "S3_SECRET_ACCESS_KEY does not belong to S3_ACCESS_KEY_ID",
    "NoSuchBucket": "bucket {bucket!r} does not exist: create it (`bot worker` creates it at start-up when allowed) "
    "or fix S3_BUCKET, S3_ENDPOINT_URL and S3_REGION",
    "InvalidBucketName": "S3_BUCKET {bucket!r} is not a valid bucket name",
    "PermanentRedirect": "bucket {bucket!r} is in another region: set S3_REGION to it",
    "AuthorizationHeaderMalformed": "bucket {bucket!r} is in another region: set S3_REGION to it",
    "IllegalLocationConstraintException": "bucket {bucket!r} is in another region: set S3_REGION to it",
    "BucketAlreadyExists": "bucket name {bucket!r} belongs to another account: choose another S3_BUCKET",
}


def translate(exc: Exception, *, action: str, bucket: str, key: str = "") -> Exception:
    """The error to raise instead of `exc` (a botocore error) when `action` ("upload", "read" ...) failed.
    Anything that is not botocore's comes back unchanged."""
    where = f"{action} s3://{bucket}/{key}" if key else f"{action} s3://{bucket}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        detail = f"{where}: no usable credentials; set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY ({exc})"
        return PermanentUpstreamError(SERVICE, detail, STORAGE_BROKEN)
    if isinstance(exc, ParamValidationError):
        return exc  # our own bug, not the service's: let it show as one
    if isinstance(exc, BotoCoreError):
        # Connection refused or reset, timeouts, a body cut short: the network or the endpoint, worth retrying.
        return TransientUpstreamError(SERVICE, f"{where}: {exc}")
    if isinstance(exc, ClientError):
        return _from_response(exc, where=where, bucket=bucket, key=key)
    return exc


def _from_response(exc: ClientError, *, where: str, bucket: str, key: str) -> UpstreamError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientUpstreamError(SERVICE, f"{where}: {code or status} {message}")
    if code == "NoSuchKey" or (code == "404" and key):
        return PermanentUpstreamError(SERVICE, f"{where}: no such object", GONE)
    # HEAD requests have no body, so a missing bucket shows only as a bare 404.
    hint = _OPERATOR_HINTS.get("NoSuchBucket" if code == "404" else code)
    detail = hint.format(bucket=bucket) if hint else f"{code or status}: {message}"
    return PermanentUpstreamError(SERVICE, f"{where}: {detail}", STORAGE_BROKEN)
