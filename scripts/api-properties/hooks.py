"""Checks the API property test adds to schemathesis' own (loaded via SCHEMATHESIS_HOOKS).

error_envelope: every answer that is not a success carries the project's one JSON error
envelope, {"error": {"code": "<lowercase_code>", "reason": "<lowercase_code>",
"params": {"<name>": "<text>"}, "message": "<non-empty text>"}}
(server/src/error.rs), so a client can always show a person what went wrong.
"""

import json
import re

import schemathesis

CODE = re.compile(r"^[a-z_]+$")
# Operator probes whose documented non-2xx answer is their own body (`Health`, `Ready`:
# why the server is not ready), not an error.
OWN_BODY = {"/healthz", "/ready"}


@schemathesis.check
def error_envelope(ctx, response, case):
    """Every non-2xx answer is the project's JSON error envelope."""
    if 200 <= response.status_code < 300 or case.path in OWN_BODY:
        return None
    # A HEAD answer has no body by HTTP's rules (RFC 9110 9.3.2): its status and headers
    # are the answer (`HEAD /v1/blobs/{sha256}`: how much the server holds).
    if case.method.upper() == "HEAD":
        return None
    where = f"{case.method} {case.formatted_path} answered {response.status_code}"
    ctype = response.headers.get("content-type", [""])
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if not ctype.startswith("application/json"):
        raise AssertionError(f"{where} with content-type {ctype!r}, not the JSON error envelope")
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{where} with a body that is not JSON: {e}") from None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != {"code", "reason", "params", "message"}:
        raise AssertionError(
            f"{where} without the envelope {{error: {{code, reason, params, message}}}}: {body!r}"
        )
    for key in ("code", "reason"):
        if not isinstance(error[key], str) or not CODE.match(error[key]):
            raise AssertionError(f"{where} with error {key} {error[key]!r}")
    params = error["params"]
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise AssertionError(f"{where} with params that are not a map of text: {params!r}")
    if not isinstance(error["message"], str) or not error["message"].strip():
        raise AssertionError(f"{where} with an empty error message")
    return None


# `POST /v1/sync` takes the binary sync body; the generated value goes as raw bytes, so
# the server meets version bytes, compression and postcard it must refuse in the envelope.
schemathesis.serializer.alias("application/x-yibiao-sync", "application/octet-stream")
