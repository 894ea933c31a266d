locals {
  # Every name comes from var.prefix: two deployments in one project differ by prefix only.
  names = {
    api_function   = "${var.prefix}-api"
    check_function = "${var.prefix}-check-archive-job"
    copy_function  = "${var.prefix}-copy-archives"
    sweep_function = "${var.prefix}-sweep-jobs"
    schedule_fn    = "${var.prefix}-run-schedules"
    schedule_job   = "${var.prefix}-run-schedules"
    webhook_fn     = "${var.prefix}-deliver-webhooks"
    webhook_queue  = "${var.prefix}-webhooks"
    check_queue    = "${var.prefix}-check"
    copy_queue     = "${var.prefix}-copy"
    sweep_job      = "${var.prefix}-sweep-jobs"
    archive_bucket = coalesce(var.archive_bucket_name, "${var.project_id}-${var.prefix}-archives")
    source_bucket  = "${var.project_id}-${var.prefix}-source"
    oauth_secret   = coalesce(var.oauth_client_secret_id, "${var.prefix}-oauth-client-secret")
    token_secret   = "${var.prefix}-token-encryption-key"
    key_ring       = "${var.prefix}-keyring"
    token_key      = "${var.prefix}-token-key"
    events_topic   = "${var.prefix}-events"
    web_bucket     = "${var.project_id}-${var.prefix}-web"
  }

  # The web app's own origin: a bucket's virtual-hosted address is an origin no other bucket shares.
  web_origin          = "https://${local.names.web_bucket}.storage.googleapis.com"
  web_callback        = "${local.web_origin}/oauth/callback"
  cors_origins        = distinct(concat(var.cors_origins, var.web_app_hosting ? [local.web_origin] : []))
  oauth_redirect_uris = distinct(concat(var.oauth_redirect_uris, var.web_app_hosting ? [local.web_callback] : []))

  # The deterministic gen2 URL form, known before the functions exist: the api function needs the
  # check function's URL (and the check function the copy function's), so reading the URL from the
  # resources would make a cycle. Cloud Tasks and Cloud Scheduler use the same URL as OIDC audience.
  function_urls = {
    api   = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.api_function}"
    check = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.check_function}"
    copy  = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.copy_function}"
    sweep = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.sweep_function}"
    # runSchedules: Cloud Scheduler's tick and one Cloud Task per scheduled run.
    schedule = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.schedule_fn}"
    # deliverWebhooks: one Cloud Task per (event, webhook endpoint).
    webhook = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.webhook_fn}"
  }

  functions_source_dir = coalesce(var.functions_source_dir, "${path.module}/../functions")

  labels = merge(var.labels, { app = "portability-pipeline", deployment = var.prefix })

  # The environment of every function. Each function parses the same configuration schema
  # (functions/src/config.ts), so each needs every variable without a default; the defaulted ones
  # are set too, so that the deployment, not the code, decides them. Secrets are not here: they
  # come from Secret Manager (secret_environment_variables in functions.tf).
  # test/infra/terraform.test.ts checks this map against the schema.
  function_environment = {
    GOOGLE_CLOUD_PROJECT      = var.project_id
    FUNCTION_REGION           = var.region
    DATAPORTABILITY_API_ROOT  = "https://dataportability.googleapis.com/"
    OAUTH_CLIENT_ID           = var.oauth_client_id
    OAUTH_TOKEN_URL           = "https://oauth2.googleapis.com/token"
    OAUTH_AUTH_URL            = "https://accounts.google.com/o/oauth2/v2/auth"
    OAUTH_REDIRECT_URIS       = join(",", local.oauth_redirect_uris)
    OAUTH_CLIENT_TESTING_MODE = tostring(var.oauth_client_testing_mode)
    OAUTH_STATE_TTL_SECONDS   = "600"
    DOWNLOAD_URL_TTL_SECONDS  = "600"
    AUTH_ISSUER               = coalesce(var.auth_issuer, "https://securetoken.google.com/${var.project_id}")
    AUTH_AUDIENCE             = coalesce(var.auth_audience, var.project_id)
    AUTH_JWKS_URL             = var.auth_jwks_url
    ARCHIVE_BUCKET            = google_storage_bucket.archives.name
    ARCHIVE_URL_HOSTS         = join(",", var.archive_url_hosts)
    TASKS_LOCATION            = var.region
    TASKS_QUEUE_CHECK         = google_cloud_tasks_queue.check.name
    TASKS_QUEUE_COPY          = google_cloud_tasks_queue.copy.name
    TASKS_SERVICE_ACCOUNT     = google_service_account.tasks_invoker.email
    CHECK_FUNCTION_URL        = local.function_urls.check
    COPY_FUNCTION_URL         = local.function_urls.copy
    SWEEP_FUNCTION_URL        = local.function_urls.sweep
    SCHEDULE_FUNCTION_URL     = local.function_urls.schedule
    SWEEP_GRACE_SECONDS       = tostring(var.sweep_grace_seconds)
    COPY_LEASE_SECONDS        = "2100"
    COPY_SLICE_SECONDS        = "1500"
    COPY_CHUNK_BYTES          = "8388608"
    COPY_PARALLEL_MIN_BYTES   = "2147483648"
    COPY_PARALLEL_PARTS       = "4"
    # Cloud Tasks and Cloud Scheduler sign their OIDC tokens as Google accounts do.
    TASKS_OIDC_ISSUER      = "https://accounts.google.com"
    TASKS_OIDC_JWKS_URL    = "https://www.googleapis.com/oauth2/v3/certs"
    TASK_RETRY_BUDGET      = tostring(var.task_retry_budget)
    POLL_INITIAL_SECONDS   = tostring(var.poll_initial_seconds)
    POLL_MAX_SECONDS       = tostring(var.poll_max_seconds)
    MAX_ARCHIVE_RETRIES    = tostring(var.max_archive_retries)
    CORS_ORIGINS           = join(",", local.cors_origins)
    ARCHIVE_MAX_BYTES      = tostring(var.archive_max_bytes)
    ARCHIVE_STALL_SECONDS  = tostring(var.archive_stall_seconds)
    MAX_EXPORTS_PER_DAY    = tostring(var.max_exports_per_day)
    MAX_CONCURRENT_EXPORTS = tostring(var.max_concurrent_exports)
    LOG_LEVEL              = var.log_level
    # Retention: one figure per kind, stated here and in the README ("What is kept, for how long").
    ARCHIVE_RETENTION_DAYS    = tostring(var.archive_delete_after_days)
    RECORD_RETENTION_DAYS     = tostring(var.record_retention_days)
    AUDIT_RETENTION_DAYS      = tostring(var.audit_retention_days)
    GRANT_EXPIRY_WARNING_DAYS = tostring(var.grant_expiry_warning_days)
    EVENTS_TOPIC              = google_pubsub_topic.events.name
    # Names of Secret Manager versions, not secrets: the deliverer reads the secrets itself.
    WEBHOOK_ENDPOINTS       = jsonencode(var.webhook_endpoints)
    WEBHOOK_FUNCTION_URL    = local.function_urls.webhook
    TASKS_QUEUE_WEBHOOKS    = google_cloud_tasks_queue.webhooks.name
    WEBHOOK_MAX_ATTEMPTS    = tostring(var.webhook_queue.max_attempts)
    WEBHOOK_TIMEOUT_SECONDS = tostring(var.webhook_timeout_seconds)
    # Read by the KMS envelope encryption that replaces TOKEN_ENCRYPTION_KEY.
    KMS_KEY_NAME = google_kms_crypto_key.token.id
  }

  # Secret environment variables of every function: env var name => Secret Manager secret id.
  function_secrets = {
    OAUTH_CLIENT_SECRET  = data.google_secret_manager_secret.oauth_client_secret.secret_id
    TOKEN_ENCRYPTION_KEY = google_secret_manager_secret.token_encryption_key.secret_id
  }
}
