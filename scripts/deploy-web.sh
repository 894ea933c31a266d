#!/usr/bin/env bash
# Builds the reference web app (web/) and uploads it with its runtime config.json to the web
# bucket (infra/web.tf, or scripts/deploy.sh, creates it). Safe to run again: files are replaced.
#
#   PROJECT_ID=my-project API_URL=https://…/portability-api FIREBASE_API_KEY=AIza… scripts/deploy-web.sh
#
# FIREBASE_API_KEY is the Firebase Web API key (not a secret: every Firebase web page carries it).
# Add the bucket's host (<bucket>.storage.googleapis.com) to Firebase Authentication's authorized
# domains once, or Google sign-in refuses to open. DRY_RUN=1 prints the commands instead.
set -euo pipefail

: "${PROJECT_ID:?PROJECT_ID is required}"
: "${API_URL:?API_URL is required (terraform output api_url)}"
: "${FIREBASE_API_KEY:?FIREBASE_API_KEY is required (Firebase console: Project settings, Web API key)}"
PREFIX="${PREFIX:-portability}"
WEB_BUCKET="${WEB_BUCKET:-${PROJECT_ID}-${PREFIX}-web}"
FIREBASE_AUTH_DOMAIN="${FIREBASE_AUTH_DOMAIN:-${PROJECT_ID}.firebaseapp.com}"
RETURN_TO_URL="${RETURN_TO_URL:-}"
RETURN_TO_LABEL="${RETURN_TO_LABEL:-}"
WEB_LOCALE="${WEB_LOCALE:-}"
MAX_ARCHIVE_RETRIES="${MAX_ARCHIVE_RETRIES:-3}"
DRY_RUN="${DRY_RUN:-}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DIST="$REPO/web/dist"

run() {
  if [[ -n "$DRY_RUN" ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

run npm --prefix "$REPO" run build:web
config="$(mktemp)"
# JSON from node, so no value needs shell quoting rules.
API_URL="$API_URL" FIREBASE_API_KEY="$FIREBASE_API_KEY" FIREBASE_AUTH_DOMAIN="$FIREBASE_AUTH_DOMAIN" PROJECT_ID="$PROJECT_ID" \
  RETURN_TO_URL="$RETURN_TO_URL" RETURN_TO_LABEL="$RETURN_TO_LABEL" WEB_LOCALE="$WEB_LOCALE" MAX_ARCHIVE_RETRIES="$MAX_ARCHIVE_RETRIES" \
  node -e '
    const e = process.env;
    const c = {
      apiBaseUrl: e.API_URL,
      auth: { mode: "firebase", apiKey: e.FIREBASE_API_KEY, authDomain: e.FIREBASE_AUTH_DOMAIN, projectId: e.PROJECT_ID },
      maxArchiveRetries: Number(e.MAX_ARCHIVE_RETRIES),
      ...(e.RETURN_TO_URL ? { returnTo: { url: e.RETURN_TO_URL, ...(e.RETURN_TO_LABEL ? { label: e.RETURN_TO_LABEL } : {}) } } : {}),
      ...(e.WEB_LOCALE ? { locale: e.WEB_LOCALE } : {}),
    };
    process.stdout.write(JSON.stringify(c, null, 2));
  ' >"$config"

# Scripts and styles may be cached (a rebuild renames the chunks); the page and its config never.
run gcloud --project="$PROJECT_ID" --quiet storage cp --recursive --cache-control=no-cache "$DIST/*" "gs://${WEB_BUCKET}/"
run gcloud --project="$PROJECT_ID" --quiet storage cp --cache-control=no-store --content-type=text/html "$DIST/index.html" "gs://${WEB_BUCKET}/index.html"
# The OAuth callback is the same page under the path Google redirects to.
run gcloud --project="$PROJECT_ID" --quiet storage cp --cache-control=no-store --content-type=text/html "$DIST/index.html" "gs://${WEB_BUCKET}/oauth/callback"
run gcloud --project="$PROJECT_ID" --quiet storage cp --cache-control=no-store --content-type=application/json "$config" "gs://${WEB_BUCKET}/config.json"
rm -f "$config"
echo "Web app: https://${WEB_BUCKET}.storage.googleapis.com/index.html" >&2
