"""AWS Signature Version 4, verified: the ``Authorization: AWS4-HMAC-SHA256 ...`` header form and the presigned
query form (``X-Amz-Algorithm``, ``X-Amz-Credential``, ...), with AWS's 15-minute clock skew.

The canonical request is built as AWS documents it (and as botocore's signer builds it): the method, the path
URI-encoded (again, for a service other than S3), the query parameters sorted and encoded, the signed headers
lower-cased with their values trimmed, the signed header names and the payload's SHA-256 (the
``X-Amz-Content-SHA256`` header when it was signed; in the presigned form ``UNSIGNED-PAYLOAD`` is accepted
too). The signing key of an (access key, date, region) is cached: it changes once a day.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from urllib.parse import parse_qsl, quote

import msgspec

from broker.sqs import errors as sqs_errors

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGNED_EXPIRES = 7 * 86400
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z\Z")
_SCOPE_DATE = re.compile(r"^\d{8}\Z")
_SPACES = re.compile(r"\s+")


class SignedRequest(msgspec.Struct, frozen=True, gc=False):
    """What a request's signature claims; ``verify`` checks it against the secret of ``access_key_id``."""

    access_key_id: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    canonical_query: str
    payload_hash: str


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


_credentials: dict[str, tuple[str, str, str]] = {}


def _parse_credential(credential: str) -> tuple[str, str, str]:
    """(access key id, date, region) of a credential scope, checked; kept, as a client sends the same all day."""
    known = _credentials.get(credential)
    if known is not None:
        return known
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise sqs_errors.incomplete_signature(
            "Credential should be scoped to a valid region and service: <key>/<date>/<region>/sqs/aws4_request."
        )
    if parts[3] != SERVICE:
        raise sqs_errors.signature_mismatch(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if not _SCOPE_DATE.match(parts[1]) or not parts[2]:
        raise sqs_errors.incomplete_signature("Credential should be scoped to a valid date and region.")
    if len(_credentials) > 10_000:
        _credentials.clear()
    _credentials[credential] = found = (parts[0], parts[1], parts[2])
    return found


_last_epoch: tuple[str, int] = ("", 0)


def _epoch(amz_date: str) -> int:
    """Seconds since the epoch of a checked ``YYYYMMDD'T'HHMMSS'Z'`` (slicing: strptime costs more than the rest
    of a verification), the last one kept: the requests of one second all carry the same date."""
    global _last_epoch
    if _last_epoch[0] == amz_date:
        return _last_epoch[1]
    try:
        seconds = calendar.timegm((int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]), int(amz_date[9:11]),
                                  int(amz_date[11:13]), int(amz_date[13:15]), 0, 0, 0))
    except ValueError:
        raise sqs_errors.incomplete_signature("X-Amz-Date is not a valid date.") from None
    _last_epoch = (amz_date, seconds)
    return seconds


def parse(query_string: bytes, headers: dict[str, str], body: bytes, now: float) -> SignedRequest:
    """The signature claim of a request (header form, else presigned query form), its time checked; raises
    the SQS error AWS gives for a missing, malformed or expired one."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True) if query_string else []
    query = dict(pairs) if pairs else {}
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme != ALGORITHM:
            raise sqs_errors.incomplete_signature(f"Unsupported authorization type (expected {ALGORITHM}).")
        fields = {}
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            fields[name.strip()] = value.strip()
        for required in ("Credential", "SignedHeaders", "Signature"):
            if not fields.get(required):
                raise sqs_errors.incomplete_signature(f"Authorization header requires '{required}' parameter.")
        access_key_id, date, region = _parse_credential(fields["Credential"])
        amz_date = headers.get("x-amz-date", "")
        if not _AMZ_DATE.match(amz_date):
            raise sqs_errors.incomplete_signature("Authorization header requires existence of a valid 'X-Amz-Date'.")
        signed = tuple(fields["SignedHeaders"].split(";"))
        signature = fields["Signature"]
        presigned = False
        payload_hash = hashlib.sha256(body).hexdigest()
        if "x-amz-content-sha256" in signed:
            given = headers.get("x-amz-content-sha256", "")
            if given != UNSIGNED_PAYLOAD and given != payload_hash:
                raise sqs_errors.signature_mismatch("The provided 'x-amz-content-sha256' header does not match "
                                                    "what was computed.")
            payload_hash = given
        canonical_pairs = pairs
    elif "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise sqs_errors.incomplete_signature(f"X-Amz-Algorithm must be {ALGORITHM}.")
        for required in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders"):
            if not query.get(required):
                raise sqs_errors.incomplete_signature(f"The query string requires '{required}'.")
        access_key_id, date, region = _parse_credential(query["X-Amz-Credential"])
        amz_date = query["X-Amz-Date"]
        if not _AMZ_DATE.match(amz_date):
            raise sqs_errors.incomplete_signature("X-Amz-Date must be of the form YYYYMMDD'T'HHMMSS'Z'.")
        signed = tuple(query["X-Amz-SignedHeaders"].split(";"))
        signature = query["X-Amz-Signature"]
        presigned = True
        payload_hash = hashlib.sha256(body).hexdigest()  # what botocore's signer hashes; UNSIGNED-PAYLOAD too
        canonical_pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        try:
            expires = int(query.get("X-Amz-Expires", "900"))
        except ValueError:
            raise sqs_errors.incomplete_signature("X-Amz-Expires must be a number of seconds.") from None
        if not 1 <= expires <= MAX_PRESIGNED_EXPIRES:
            raise sqs_errors.incomplete_signature("X-Amz-Expires must be between 1 and 604800 seconds.")
        if now > _epoch(amz_date) + expires:
            raise sqs_errors.SqsError("RequestExpired", "Request has expired.", status=403)
    else:
        raise sqs_errors.missing_authentication()
    if amz_date[:8] != date:
        raise sqs_errors.signature_mismatch("Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                                            "version of date from HTTP.")
    signed_time = _epoch(amz_date)
    if abs(now - signed_time) > MAX_SKEW_SECONDS and not presigned:
        shown = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        raise sqs_errors.signature_mismatch(
            f"Signature expired: {amz_date} is now earlier than {shown} - 15 min. (or later than + 15 min.)"
        )
    if presigned and signed_time > now + MAX_SKEW_SECONDS:
        raise sqs_errors.signature_mismatch("Signature not yet current.")
    if "host" not in signed:
        raise sqs_errors.signature_mismatch("'Host' must be a signed header.")
    canonical_query = "&".join(
        f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(canonical_pairs)
    ) if canonical_pairs else ""
    return SignedRequest(access_key_id, date, region, amz_date, signed, signature, presigned, canonical_query,
                         payload_hash)


_signing_keys: dict[tuple[str, str, str, str], bytes] = {}


def signing_key(secret: str, date: str, region: str) -> bytes:
    """HMAC("AWS4" + secret, date) -> region -> service -> "aws4_request", cached."""
    cache_key = (secret, date, region, SERVICE)
    key = _signing_keys.get(cache_key)
    if key is None:
        key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
        for part in (region, SERVICE, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        if len(_signing_keys) > 10_000:
            _signing_keys.clear()
        _signing_keys[cache_key] = key
    return key


def verify(claim: SignedRequest, secret: str, method: str, raw_path: str, headers: dict[str, str]) -> None:
    """Raise SignatureDoesNotMatch unless the request was signed with ``secret``."""
    canonical_headers = ""
    for name in claim.signed_headers:
        if name not in headers:
            raise sqs_errors.signature_mismatch(f"The signed header {name!r} is missing from the request.")
        value = headers[name].strip()
        if "  " in value or "\t" in value or "\n" in value:
            value = _SPACES.sub(" ", value)
        canonical_headers += f"{name}:{value}\n"
    path = "/" if raw_path in ("", "/") else quote(raw_path, safe="/~")
    scope = f"{claim.date}/{claim.region}/{SERVICE}/aws4_request"
    key = signing_key(secret, claim.date, claim.region)
    # A presigned URL's payload is UNSIGNED-PAYLOAD for AWS's docs and some SDKs, the body's hash for botocore.
    hashes = (claim.payload_hash, UNSIGNED_PAYLOAD) if claim.presigned else (claim.payload_hash,)
    matched = False
    for payload_hash in hashes:
        canonical = "\n".join((method, path, claim.canonical_query, canonical_headers,
                               ";".join(claim.signed_headers), payload_hash))
        to_sign = f"{ALGORITHM}\n{claim.amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        matched = matched or hmac.compare_digest(expected, claim.signature)
    if not matched:
        raise sqs_errors.signature_mismatch(
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method."
        )
