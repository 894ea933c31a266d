#!/usr/bin/env bash
# Smoke test of a deployed API: a call without an ID token must be refused (401), the same call
# with a valid ID token must succeed (2xx). Never prints the token.
#
#   API_URL=https://REGION-PROJECT.cloudfunctions.net/PREFIX-api infra/smoke-test.sh
#
# ID token, first that applies:
#   ID_TOKEN                          given as is;
#   FIREBASE_API_KEY + SMOKE_EMAIL    a Firebase Authentication test user (email/password sign-in),
#     + SMOKE_PASSWORD or SMOKE_PASSWORD_SECRET (a Secret Manager secret holding the password);
#   SMOKE_IMPERSONATE_SA              a Google-signed ID token of that service account (for a
#                                     deployment with auth_issuer https://accounts.google.com).
# SMOKE_PATH: the authenticated route to call (default /v1/exports).
set -euo pipefail

: "${API_URL:?API_URL is required}"
path="${SMOKE_PATH:-/v1/exports}"
url="${API_URL%/}${path}"

id_token() {
  if [[ -n "${ID_TOKEN:-}" ]]; then
    printf '%s' "$ID_TOKEN"
  elif [[ -n "${FIREBASE_API_KEY:-}" && -n "${SMOKE_EMAIL:-}" ]]; then
    local password="${SMOKE_PASSWORD:-}"
    if [[ -z "$password" && -n "${SMOKE_PASSWORD_SECRET:-}" ]]; then
      password="$(gcloud secrets versions access latest --secret="$SMOKE_PASSWORD_SECRET")"
    fi
    [[ -n "$password" ]] || { echo "smoke-test: set SMOKE_PASSWORD or SMOKE_PASSWORD_SECRET" >&2; return 1; }
    # The API key goes in a header, not the URL; the password goes through stdin, not argv.
    # python3 rather than jq: the Cloud SDK images always have python3.
    printf '%s' "$password" |
      SMOKE_EMAIL="$SMOKE_EMAIL" python3 -c 'import json, os, sys; print(json.dumps({"email": os.environ["SMOKE_EMAIL"], "password": sys.stdin.read(), "returnSecureToken": True}))' |
      curl -fsS -X POST -H 'Content-Type: application/json' -H "X-Goog-Api-Key: ${FIREBASE_API_KEY}" --data-binary @- \
        'https://identitytoolkit.googleapis.com/v1/accounts:signInWithPassword' |
      python3 -c 'import json, sys; print(json.load(sys.stdin).get("idToken", ""))'
  elif [[ -n "${SMOKE_IMPERSONATE_SA:-}" ]]; then
    gcloud auth print-identity-token --impersonate-service-account="$SMOKE_IMPERSONATE_SA" \
      --audiences="${SMOKE_AUDIENCE:-$API_URL}" --include-email 2>/dev/null
  else
    echo "smoke-test: no way to get an ID token (see the header of infra/smoke-test.sh)" >&2
    return 1
  fi
}

status_without_token="$(curl -sS -o /dev/null -w '%{http_code}' "$url")"
if [[ "$status_without_token" != "401" ]]; then
  echo "smoke-test: FAIL: GET ${path} without a token answered ${status_without_token}, expected 401" >&2
  exit 1
fi
echo "smoke-test: GET ${path} without a token: 401 as expected"

token="$(id_token)"
[[ -n "$token" && "$token" != "null" ]] || { echo "smoke-test: FAIL: no ID token obtained" >&2; exit 1; }
# The header goes through stdin (-H @-) so the token is not in the process list.
status_with_token="$(printf 'Authorization: Bearer %s\n' "$token" | curl -sS -o /dev/null -w '%{http_code}' -H @- "$url")"
if [[ "$status_with_token" != 2* ]]; then
  echo "smoke-test: FAIL: GET ${path} with an ID token answered ${status_with_token}, expected 2xx" >&2
  exit 1
fi
echo "smoke-test: GET ${path} with an ID token: ${status_with_token}. OK"
