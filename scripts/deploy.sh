#!/usr/bin/env bash
# Deploys portability-pipeline with gcloud alone, for teams without Terraform: the same resources,
# names and settings as infra/ (read infra/README.md first; Terraform is the reference). Safe to
# run again: existing resources are updated or left alone.
#
#   PROJECT_ID=my-project OAUTH_CLIENT_ID=123-abc.apps.googleusercontent.com scripts/deploy.sh
#
# Before the first run, store the OAuth client secret (it never passes through this script):
#   printf '%s' "$CLIENT_SECRET" | gcloud secrets create portability-oauth-client-secret --data-file=- --project=my-project
# DRY_RUN=1 prints the gcloud commands instead of running them (nothing is read or changed).
set -euo pipefail

: "${PROJECT_ID:?PROJECT_ID is required}"
: "${OAUTH_CLIENT_ID:?OAUTH_CLIENT_ID is required (the OAuth Web client id)}"
REGION="${REGION:-europe-west1}"
PREFIX="${PREFIX:-portability}"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-eur3}"
ARCHIVE_BUCKET="${ARCHIVE_BUCKET:-${PROJECT_ID}-${PREFIX}-archives}"
ARCHIVE_BUCKET_LOCATION="${ARCHIVE_BUCKET_LOCATION:-${REGION^^}}"
ARCHIVE_DELETE_AFTER_DAYS="${ARCHIVE_DELETE_AFTER_DAYS:-30}"
RECORD_RETENTION_DAYS="${RECORD_RETENTION_DAYS:-90}"
AUDIT_RETENTION_DAYS="${AUDIT_RETENTION_DAYS:-365}"
GRANT_EXPIRY_WARNING_DAYS="${GRANT_EXPIRY_WARNING_DAYS:-7}"
OAUTH_SECRET="${OAUTH_CLIENT_SECRET_ID:-${PREFIX}-oauth-client-secret}"
AUTH_ISSUER="${AUTH_ISSUER:-https://securetoken.google.com/${PROJECT_ID}}"
AUTH_AUDIENCE="${AUTH_AUDIENCE:-${PROJECT_ID}}"
AUTH_JWKS_URL="${AUTH_JWKS_URL:-https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com}"
CORS_ORIGINS="${CORS_ORIGINS:-}"
# Comma-separated: the frontend's OAuth callback URLs, as registered with the OAuth client.
OAUTH_REDIRECT_URIS="${OAUTH_REDIRECT_URIS:-}"
ARCHIVE_URL_HOSTS="${ARCHIVE_URL_HOSTS:-storage.googleapis.com}"
LOG_LEVEL="${LOG_LEVEL:-info}"
POLL_INITIAL_SECONDS="${POLL_INITIAL_SECONDS:-300}"
POLL_MAX_SECONDS="${POLL_MAX_SECONDS:-3600}"
MAX_ARCHIVE_RETRIES="${MAX_ARCHIVE_RETRIES:-3}"
TASK_RETRY_BUDGET="${TASK_RETRY_BUDGET:-30}"
SWEEP_GRACE_SECONDS="${SWEEP_GRACE_SECONDS:-600}"
ARCHIVE_MAX_BYTES="${ARCHIVE_MAX_BYTES:-53687091200}"
ARCHIVE_STALL_SECONDS="${ARCHIVE_STALL_SECONDS:-60}"
MAX_EXPORTS_PER_DAY="${MAX_EXPORTS_PER_DAY:-10}"
MAX_CONCURRENT_EXPORTS="${MAX_CONCURRENT_EXPORTS:-3}"
API_PUBLIC="${API_PUBLIC:-true}"
# Warm API instances (infra/README.md states what each costs a month); the other functions scale to zero.
API_MIN_INSTANCES="${API_MIN_INSTANCES:-0}"
WORKER_INGRESS="${WORKER_INGRESS:-internal-only}"
SWEEP_SCHEDULE="${SWEEP_SCHEDULE:-*/5 * * * *}"
SCHEDULES_SCHEDULE="${SCHEDULES_SCHEDULE:-*/5 * * * *}"
OAUTH_CLIENT_TESTING_MODE="${OAUTH_CLIENT_TESTING_MODE:-false}"
# The reference web app in a public bucket of its own (infra/web.tf); FIREBASE_API_KEY set uploads it too.
WEB_APP_HOSTING="${WEB_APP_HOSTING:-true}"
FIREBASE_API_KEY="${FIREBASE_API_KEY:-}"
# Signed webhooks: a JSON list of {"id","url","secret"} (secret: projects/P/secrets/S/versions/N holding
# whsec_<base64>, created beforehand like the OAuth client secret). Only the deliverer may read them.
WEBHOOK_ENDPOINTS="${WEBHOOK_ENDPOINTS:-[]}"
WEBHOOK_MAX_ATTEMPTS="${WEBHOOK_MAX_ATTEMPTS:-12}"
WEBHOOK_TIMEOUT_SECONDS="${WEBHOOK_TIMEOUT_SECONDS:-10}"
DRY_RUN="${DRY_RUN:-}"

REPO="$(cd "$(dirname "$0")/.." && pwd)"

# As infra/variables.tf validates api_min_instances: a whole number up to the API's max instances (20).
if ! [[ "$API_MIN_INSTANCES" =~ ^[0-9]+$ ]] || ((API_MIN_INSTANCES > 20)); then
  echo "API_MIN_INSTANCES must be a whole number from 0 to 20, got '${API_MIN_INSTANCES}'" >&2
  exit 1
fi

# Names: the same as infra/locals.tf.
API_FN="${PREFIX}-api"
CHECK_FN="${PREFIX}-check-archive-job"
COPY_FN="${PREFIX}-copy-archives"
SWEEP_FN="${PREFIX}-sweep-jobs"
SCHEDULE_FN="${PREFIX}-run-schedules"
SCHEDULE_JOB="${PREFIX}-run-schedules"
WEBHOOK_FN="${PREFIX}-deliver-webhooks"
WEBHOOK_QUEUE="${PREFIX}-webhooks"
CHECK_QUEUE="${PREFIX}-check"
COPY_QUEUE="${PREFIX}-copy"
SWEEP_JOB="${PREFIX}-sweep-jobs"
SOURCE_BUCKET="${PROJECT_ID}-${PREFIX}-source"
TOKEN_SECRET="${PREFIX}-token-encryption-key"
KEY_RING="${PREFIX}-keyring"
TOKEN_KEY="${PREFIX}-token-key"
EVENTS_TOPIC="${PREFIX}-events"
FN_URL_BASE="https://${REGION}-${PROJECT_ID}.cloudfunctions.net"
WEB_BUCKET="${PROJECT_ID}-${PREFIX}-web"
WEB_ORIGIN="https://${WEB_BUCKET}.storage.googleapis.com"
# As infra/locals.tf: the web app's origin may call the API, and its callback may end a consent.
if [[ "$WEB_APP_HOSTING" == "true" ]]; then
  CORS_ORIGINS="${CORS_ORIGINS:+${CORS_ORIGINS},}${WEB_ORIGIN}"
  OAUTH_REDIRECT_URIS="${OAUTH_REDIRECT_URIS:+${OAUTH_REDIRECT_URIS},}${WEB_ORIGIN}/oauth/callback"
fi
sa() { printf '%s-%s@%s.iam.gserviceaccount.com' "$PREFIX" "$1" "$PROJECT_ID"; }
INVOKER_SA="$(sa invoker)"
BUILD_SA="$(sa build)"
KMS_KEY_NAME="projects/${PROJECT_ID}/locations/${REGION}/keyRings/${KEY_RING}/cryptoKeys/${TOKEN_KEY}"

log() { printf '\n== %s\n' "$*" >&2; }

# Runs a command, or prints it under DRY_RUN.
run() {
  if [[ -n "$DRY_RUN" ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}
gc() { run gcloud --project="$PROJECT_ID" --quiet "$@"; }
# True when a describe command succeeds; under DRY_RUN nothing exists, so every create is printed.
exists() { [[ -z "$DRY_RUN" ]] && gcloud --project="$PROJECT_ID" --quiet "$@" >/dev/null 2>&1; }
# Creates; an "already exists" answer is success (indexes, bindings on re-runs).
create_once() {
  local out
  if [[ -n "$DRY_RUN" ]]; then gc "$@"; return 0; fi
  out="$(gcloud --project="$PROJECT_ID" --quiet "$@" 2>&1)" && return 0
  grep -qi 'already exists' <<<"$out" && return 0
  printf '%s\n' "$out" >&2
  return 1
}
# YAML single-quoted scalar.
q() { printf "'%s'" "${1//\'/\'\'}"; }

log "APIs"
gc services enable artifactregistry.googleapis.com cloudbuild.googleapis.com cloudfunctions.googleapis.com \
  cloudkms.googleapis.com cloudscheduler.googleapis.com cloudtasks.googleapis.com dataportability.googleapis.com \
  firestore.googleapis.com iam.googleapis.com iamcredentials.googleapis.com logging.googleapis.com \
  monitoring.googleapis.com pubsub.googleapis.com run.googleapis.com secretmanager.googleapis.com storage.googleapis.com

log "OAuth client secret"
if [[ -z "$DRY_RUN" ]] && ! exists secrets describe "$OAUTH_SECRET"; then
  echo "Secret ${OAUTH_SECRET} does not exist. Create it first (see the header of this script)." >&2
  exit 1
fi

log "Firestore (native mode), indexes, TTL"
exists firestore databases describe --database='(default)' ||
  gc firestore databases create --database='(default)' --location="$FIRESTORE_LOCATION" --type=firestore-native
# The composite indexes of infra/firestore.tf (test/infra/terraform.test.ts keeps the two lists equal).
create_once firestore indexes composite create --collection-group=exports \
  --field-config=field-path=userId,order=ascending --field-config=field-path=createdAt,order=descending \
  --field-config=field-path=id,order=descending --async
create_once firestore indexes composite create --collection-group=schedules \
  --field-config=field-path=userId,order=ascending --field-config=field-path=createdAt,order=descending \
  --field-config=field-path=id,order=descending --async
create_once firestore indexes composite create --collection-group=schedules \
  --field-config=field-path=state,order=ascending --field-config=field-path=nextRunAt,order=ascending --async
create_once firestore indexes composite create --collection-group=exports \
  --field-config=field-path=scheduleId,order=ascending --field-config=field-path=createdAt,order=descending --async
create_once firestore indexes composite create --collection-group=auditPending \
  --field-config=field-path=userKey,order=ascending --field-config=field-path=at,order=ascending --async
create_once firestore indexes composite create --collection-group=auditEntries \
  --field-config=field-path=userKey,order=ascending --field-config=field-path=seq,order=descending --async
gc firestore fields ttls update expireAt --collection-group=idempotency --enable-ttl --async
for c in exports jobs auditPending auditEntries auditHeads; do
  gc firestore fields ttls update expireAt --collection-group="$c" --enable-ttl --async
done
gc firestore fields ttls update expireAt --collection-group=consentStates --enable-ttl --async

log "Events topic (Pub/Sub), its dead-letter topic and an example subscription"
exists pubsub topics describe "$EVENTS_TOPIC" || gc pubsub topics create "$EVENTS_TOPIC" --message-retention-duration=7d
exists pubsub topics describe "${EVENTS_TOPIC}-dead-letter" || gc pubsub topics create "${EVENTS_TOPIC}-dead-letter"
exists pubsub subscriptions describe "${EVENTS_TOPIC}-example" ||
  gc pubsub subscriptions create "${EVENTS_TOPIC}-example" --topic="$EVENTS_TOPIC" --ack-deadline=60 \
    --message-retention-duration=7d --min-retry-delay=10s --max-retry-delay=600s \
    --dead-letter-topic="${EVENTS_TOPIC}-dead-letter" --max-delivery-attempts=10
# Dead-lettering is done by the Pub/Sub service agent.
PUBSUB_AGENT="serviceAccount:service-$( [[ -n "$DRY_RUN" ]] && echo PROJECT_NUMBER || gcloud projects describe "$PROJECT_ID" --format='value(projectNumber)')@gcp-sa-pubsub.iam.gserviceaccount.com"
gc pubsub topics add-iam-policy-binding "${EVENTS_TOPIC}-dead-letter" --member="$PUBSUB_AGENT" --role=roles/pubsub.publisher --format=none
gc pubsub subscriptions add-iam-policy-binding "${EVENTS_TOPIC}-example" --member="$PUBSUB_AGENT" --role=roles/pubsub.subscriber --format=none

log "Buckets"
exists storage buckets describe "gs://${ARCHIVE_BUCKET}" ||
  gc storage buckets create "gs://${ARCHIVE_BUCKET}" --location="$ARCHIVE_BUCKET_LOCATION" \
    --uniform-bucket-level-access --public-access-prevention --soft-delete-duration=7d
lifecycle="$(mktemp)"
trap 'rm -rf "$lifecycle" "${stage:-}" "${env_file:-}"' EXIT
# Archive retention (ARCHIVE_RETENTION_DAYS, the same figure the functions are given).
delete_rule="{\"action\": {\"type\": \"Delete\"}, \"condition\": {\"age\": ${ARCHIVE_DELETE_AFTER_DAYS}}},"
printf '{"rule": [%s {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}}]}\n' "$delete_rule" >"$lifecycle"
gc storage buckets update "gs://${ARCHIVE_BUCKET}" --lifecycle-file="$lifecycle"
exists storage buckets describe "gs://${SOURCE_BUCKET}" ||
  gc storage buckets create "gs://${SOURCE_BUCKET}" --location="${REGION^^}" --uniform-bucket-level-access --public-access-prevention

log "Cloud KMS key for token encryption"
exists kms keyrings describe "$KEY_RING" --location="$REGION" || gc kms keyrings create "$KEY_RING" --location="$REGION"
exists kms keys describe "$TOKEN_KEY" --keyring="$KEY_RING" --location="$REGION" ||
  gc kms keys create "$TOKEN_KEY" --keyring="$KEY_RING" --location="$REGION" --purpose=encryption \
    --rotation-period=90d --next-rotation-time="$(date -u -d '+90 days' +%Y-%m-%dT%H:%M:%SZ)"

log "Token encryption key secret"
if ! exists secrets describe "$TOKEN_SECRET"; then
  if [[ -n "$DRY_RUN" ]]; then
    echo "openssl rand -base64 32 | gcloud --project=${PROJECT_ID} secrets create ${TOKEN_SECRET} --data-file=- --replication-policy=automatic"
  else
    openssl rand -base64 32 | tr -d '\n' | gcloud --project="$PROJECT_ID" --quiet secrets create "$TOKEN_SECRET" --data-file=- --replication-policy=automatic
  fi
fi

log "Service accounts"
for id in api check copy sweep schedule webhook invoker build; do
  exists iam service-accounts describe "$(sa "$id")" ||
    gc iam service-accounts create "${PREFIX}-${id}" --display-name="${PREFIX}: ${id}"
done

log "Cloud Tasks queues"
queue() { # name max_per_second max_concurrent max_attempts min_backoff max_backoff max_doublings
  local verb=create
  exists tasks queues describe "$1" --location="$REGION" && verb=update
  gc tasks queues "$verb" "$1" --location="$REGION" --max-dispatches-per-second="$2" --max-concurrent-dispatches="$3" \
    --max-attempts="$4" --min-backoff="$5" --max-backoff="$6" --max-doublings="$7" --log-sampling-ratio=1.0
}
queue "$CHECK_QUEUE" 5 20 100 10s 600s 5
queue "$COPY_QUEUE" 1 5 100 30s 1800s 4
# Bounded: the deliverer gives up and records on the last attempt (WEBHOOK_MAX_ATTEMPTS, the same number).
queue "$WEBHOOK_QUEUE" 10 20 "$WEBHOOK_MAX_ATTEMPTS" 10s 3600s 8

log "IAM (least privilege, as infra/iam.tf)"
for id in api check copy sweep schedule webhook; do
  member="serviceAccount:$(sa "$id")"
  gc projects add-iam-policy-binding "$PROJECT_ID" --member="$member" --role=roles/datastore.user --condition=None --format=none
  for secret in "$OAUTH_SECRET" "$TOKEN_SECRET"; do
    gc secrets add-iam-policy-binding "$secret" --member="$member" --role=roles/secretmanager.secretAccessor --format=none
  done
  gc iam service-accounts add-iam-policy-binding "$INVOKER_SA" --member="$member" --role=roles/iam.serviceAccountUser --format=none
done
# Download links: the api signs (IAM signBlob) as itself only.
gc iam service-accounts add-iam-policy-binding "$(sa api)" --member="serviceAccount:$(sa api)" --role=roles/iam.serviceAccountTokenCreator --format=none
for id in api check copy; do
  gc kms keys add-iam-policy-binding "$TOKEN_KEY" --keyring="$KEY_RING" --location="$REGION" \
    --member="serviceAccount:$(sa "$id")" --role=roles/cloudkms.cryptoKeyEncrypterDecrypter --format=none
done
for pair in api:"$CHECK_QUEUE" api:"$COPY_QUEUE" check:"$CHECK_QUEUE" check:"$COPY_QUEUE" copy:"$CHECK_QUEUE" copy:"$COPY_QUEUE" sweep:"$CHECK_QUEUE" sweep:"$COPY_QUEUE" schedule:"$CHECK_QUEUE" \
  api:"$WEBHOOK_QUEUE" check:"$WEBHOOK_QUEUE" copy:"$WEBHOOK_QUEUE" sweep:"$WEBHOOK_QUEUE" schedule:"$WEBHOOK_QUEUE"; do
  gc tasks queues add-iam-policy-binding "${pair#*:}" --location="$REGION" \
    --member="serviceAccount:$(sa "${pair%%:*}")" --role=roles/cloudtasks.enqueuer --format=none
done
# The webhook endpoints' secrets: the deliverer alone reads them, each on its own secret.
for secret in $(node -e 'for (const e of JSON.parse(process.argv[1])) console.log(/^projects\/([^/]+)\/secrets\/([^/]+)\/versions\//.exec(e.secret).slice(1).join("/"))' "$WEBHOOK_ENDPOINTS"); do
  gc secrets add-iam-policy-binding "${secret#*/}" --project="${secret%%/*}" --member="serviceAccount:$(sa webhook)" --role=roles/secretmanager.secretAccessor --format=none
done
for id in api check copy sweep schedule; do
  gc pubsub topics add-iam-policy-binding "$EVENTS_TOPIC" --member="serviceAccount:$(sa "$id")" --role=roles/pubsub.publisher --format=none
done
for id in api copy; do
  gc storage buckets add-iam-policy-binding "gs://${ARCHIVE_BUCKET}" --member="serviceAccount:$(sa "$id")" --role=roles/storage.objectUser --format=none
done
gc storage buckets add-iam-policy-binding "gs://${SOURCE_BUCKET}" --member="serviceAccount:${BUILD_SA}" --role=roles/storage.objectViewer --format=none
for role in roles/logging.logWriter roles/artifactregistry.writer; do
  gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:${BUILD_SA}" --role="$role" --condition=None --format=none
done

log "Build"
run npm --prefix "$REPO" run build
# Compiled lib/, the entry point, package.json and its lockfile (so the cloud build's npm ci installs
# the versions the tests ran on), as infra/storage.tf packages it.
stage="$(mktemp -d)"
cp "$REPO/functions/package.json" "$REPO/functions/package-lock.json" "$REPO/functions/index.cjs" "$stage/"
if [[ -z "$DRY_RUN" ]]; then cp -R "$REPO/functions/lib" "$stage/lib"; fi

# Every function parses the same configuration schema (functions/src/config.ts): one env file.
env_file="$(mktemp)"
cat >"$env_file" <<ENV
GOOGLE_CLOUD_PROJECT: $(q "$PROJECT_ID")
FUNCTION_REGION: $(q "$REGION")
DATAPORTABILITY_API_ROOT: 'https://dataportability.googleapis.com/'
OAUTH_CLIENT_ID: $(q "$OAUTH_CLIENT_ID")
OAUTH_TOKEN_URL: 'https://oauth2.googleapis.com/token'
OAUTH_AUTH_URL: 'https://accounts.google.com/o/oauth2/v2/auth'
OAUTH_REDIRECT_URIS: $(q "$OAUTH_REDIRECT_URIS")
OAUTH_STATE_TTL_SECONDS: '600'
DOWNLOAD_URL_TTL_SECONDS: '600'
ARCHIVE_RETENTION_DAYS: $(q "$ARCHIVE_DELETE_AFTER_DAYS")
RECORD_RETENTION_DAYS: $(q "$RECORD_RETENTION_DAYS")
AUDIT_RETENTION_DAYS: $(q "$AUDIT_RETENTION_DAYS")
GRANT_EXPIRY_WARNING_DAYS: $(q "$GRANT_EXPIRY_WARNING_DAYS")
OAUTH_CLIENT_TESTING_MODE: $(q "$OAUTH_CLIENT_TESTING_MODE")
AUTH_ISSUER: $(q "$AUTH_ISSUER")
AUTH_AUDIENCE: $(q "$AUTH_AUDIENCE")
AUTH_JWKS_URL: $(q "$AUTH_JWKS_URL")
ARCHIVE_BUCKET: $(q "$ARCHIVE_BUCKET")
ARCHIVE_URL_HOSTS: $(q "$ARCHIVE_URL_HOSTS")
TASKS_LOCATION: $(q "$REGION")
TASKS_QUEUE_CHECK: $(q "$CHECK_QUEUE")
TASKS_QUEUE_COPY: $(q "$COPY_QUEUE")
TASKS_SERVICE_ACCOUNT: $(q "$INVOKER_SA")
CHECK_FUNCTION_URL: $(q "${FN_URL_BASE}/${CHECK_FN}")
COPY_FUNCTION_URL: $(q "${FN_URL_BASE}/${COPY_FN}")
SWEEP_FUNCTION_URL: $(q "${FN_URL_BASE}/${SWEEP_FN}")
SCHEDULE_FUNCTION_URL: $(q "${FN_URL_BASE}/${SCHEDULE_FN}")
SWEEP_GRACE_SECONDS: $(q "$SWEEP_GRACE_SECONDS")
COPY_LEASE_SECONDS: '2100'
COPY_SLICE_SECONDS: '1500'
COPY_CHUNK_BYTES: '8388608'
COPY_PARALLEL_MIN_BYTES: '2147483648'
COPY_PARALLEL_PARTS: '4'
TASKS_OIDC_ISSUER: 'https://accounts.google.com'
TASKS_OIDC_JWKS_URL: 'https://www.googleapis.com/oauth2/v3/certs'
TASK_RETRY_BUDGET: $(q "$TASK_RETRY_BUDGET")
POLL_INITIAL_SECONDS: $(q "$POLL_INITIAL_SECONDS")
POLL_MAX_SECONDS: $(q "$POLL_MAX_SECONDS")
MAX_ARCHIVE_RETRIES: $(q "$MAX_ARCHIVE_RETRIES")
CORS_ORIGINS: $(q "$CORS_ORIGINS")
ARCHIVE_MAX_BYTES: $(q "$ARCHIVE_MAX_BYTES")
ARCHIVE_STALL_SECONDS: $(q "$ARCHIVE_STALL_SECONDS")
MAX_EXPORTS_PER_DAY: $(q "$MAX_EXPORTS_PER_DAY")
MAX_CONCURRENT_EXPORTS: $(q "$MAX_CONCURRENT_EXPORTS")
LOG_LEVEL: $(q "$LOG_LEVEL")
EVENTS_TOPIC: $(q "$EVENTS_TOPIC")
WEBHOOK_ENDPOINTS: $(q "$WEBHOOK_ENDPOINTS")
WEBHOOK_FUNCTION_URL: $(q "${FN_URL_BASE}/${WEBHOOK_FN}")
TASKS_QUEUE_WEBHOOKS: $(q "$WEBHOOK_QUEUE")
WEBHOOK_MAX_ATTEMPTS: $(q "$WEBHOOK_MAX_ATTEMPTS")
WEBHOOK_TIMEOUT_SECONDS: $(q "$WEBHOOK_TIMEOUT_SECONDS")
KMS_KEY_NAME: $(q "$KMS_KEY_NAME")
ENV

deploy() { # name entry-point memory timeout max-instances ingress service-account-id min-instances
  gc functions deploy "$1" --gen2 --region="$REGION" --runtime=nodejs22 --source="$stage" --entry-point="$2" \
    --trigger-http --no-allow-unauthenticated --memory="$3" --timeout="$4" --max-instances="$5" --min-instances="${8:-0}" \
    --ingress-settings="$6" --service-account="$(sa "$7")" \
    --build-service-account="projects/${PROJECT_ID}/serviceAccounts/${BUILD_SA}" \
    --set-build-env-vars=GOOGLE_NODE_RUN_SCRIPTS= \
    --env-vars-file="$env_file" \
    --set-secrets="OAUTH_CLIENT_SECRET=${OAUTH_SECRET}:latest,TOKEN_ENCRYPTION_KEY=${TOKEN_SECRET}:latest"
}

log "Functions"
deploy "$API_FN" api 256Mi 60s 20 all api "$API_MIN_INSTANCES"
deploy "$CHECK_FN" checkArchiveJob 256Mi 300s 10 "$WORKER_INGRESS" check
deploy "$COPY_FN" copyArchives 512Mi 3600s 5 "$WORKER_INGRESS" copy
deploy "$SWEEP_FN" sweepJobs 256Mi 300s 1 "$WORKER_INGRESS" sweep
deploy "$SCHEDULE_FN" runSchedules 256Mi 300s 5 "$WORKER_INGRESS" schedule
deploy "$WEBHOOK_FN" deliverWebhooks 256Mi 120s 5 "$WORKER_INGRESS" webhook

log "Invokers: the API is public (it verifies ID tokens itself); the others admit only ${INVOKER_SA}"
if [[ "$API_PUBLIC" == "true" ]]; then
  gc functions add-invoker-policy-binding "$API_FN" --region="$REGION" --member=allUsers --format=none
fi
for fn in "$CHECK_FN" "$COPY_FN" "$SWEEP_FN" "$SCHEDULE_FN" "$WEBHOOK_FN"; do
  gc functions add-invoker-policy-binding "$fn" --region="$REGION" --member="serviceAccount:${INVOKER_SA}" --format=none
done

log "Cloud Scheduler: the sweeper"
verb=create
exists scheduler jobs describe "$SWEEP_JOB" --location="$REGION" && verb=update
gc scheduler jobs "$verb" http "$SWEEP_JOB" --location="$REGION" --schedule="$SWEEP_SCHEDULE" --time-zone=Etc/UTC \
  --uri="${FN_URL_BASE}/${SWEEP_FN}" --http-method=POST --attempt-deadline=300s --max-retry-attempts=0 \
  --oidc-service-account-email="$INVOKER_SA" --oidc-token-audience="${FN_URL_BASE}/${SWEEP_FN}"

log "Cloud Scheduler: scheduled exports (time-based access)"
verb=create
exists scheduler jobs describe "$SCHEDULE_JOB" --location="$REGION" && verb=update
gc scheduler jobs "$verb" http "$SCHEDULE_JOB" --location="$REGION" --schedule="$SCHEDULES_SCHEDULE" --time-zone=Etc/UTC \
  --uri="${FN_URL_BASE}/${SCHEDULE_FN}" --http-method=POST --attempt-deadline=300s --max-retry-attempts=0 \
  --oidc-service-account-email="$INVOKER_SA" --oidc-token-audience="${FN_URL_BASE}/${SCHEDULE_FN}"

log "Log-based metrics (alert policies: see infra/monitoring.tf, or create them in the console)"
logs="resource.type=\"cloud_run_revision\" AND resource.labels.location=\"${REGION}\""
metric() { # name description filter
  local verb=create
  exists logging metrics describe "$1" && verb=update
  gc logging metrics "$verb" "$1" --description="$2" --log-filter="$3"
}
metric "${PREFIX}-failed-export-jobs" "Export jobs that ended FAILED (${PREFIX})." \
  "${logs} AND resource.labels.service_name=~\"^${PREFIX}-\" AND jsonPayload.message=\"job state changed\" AND jsonPayload.state=\"FAILED\""
metric "${PREFIX}-copy-errors" "Errors logged by the copyArchives function (${PREFIX})." \
  "${logs} AND resource.labels.service_name=\"${COPY_FN}\" AND severity>=ERROR"

if [[ "$WEB_APP_HOSTING" == "true" ]]; then
  log "Web app: static files in gs://${WEB_BUCKET}, readable by anyone (as infra/web.tf)"
  exists storage buckets describe "gs://${WEB_BUCKET}" ||
    gc storage buckets create "gs://${WEB_BUCKET}" --location="${REGION^^}" --uniform-bucket-level-access
  gc storage buckets add-iam-policy-binding "gs://${WEB_BUCKET}" --member=allUsers --role=roles/storage.objectViewer --format=none
  if [[ -n "$FIREBASE_API_KEY" ]]; then
    PROJECT_ID="$PROJECT_ID" PREFIX="$PREFIX" API_URL="${FN_URL_BASE}/${API_FN}" FIREBASE_API_KEY="$FIREBASE_API_KEY" \
      MAX_ARCHIVE_RETRIES="$MAX_ARCHIVE_RETRIES" DRY_RUN="$DRY_RUN" bash "$REPO/scripts/deploy-web.sh"
  else
    echo "Set FIREBASE_API_KEY to upload the web app too (or run scripts/deploy-web.sh)." >&2
  fi
fi

log "Done. API: ${FN_URL_BASE}/${API_FN}"
