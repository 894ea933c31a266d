# Least privilege: one service account per function, roles granted on the narrowest resource
# (queue, bucket, secret, key) wherever the role allows it. Project-level grants are only those
# that have no narrower scope (Firestore, build logs, Artifact Registry of the function builds).

resource "google_service_account" "api" {
  project      = var.project_id
  account_id   = "${var.prefix}-api"
  display_name = "${var.prefix}: api function"
}

resource "google_service_account" "check" {
  project      = var.project_id
  account_id   = "${var.prefix}-check"
  display_name = "${var.prefix}: checkArchiveJob function"
}

resource "google_service_account" "copy" {
  project      = var.project_id
  account_id   = "${var.prefix}-copy"
  display_name = "${var.prefix}: copyArchives function"
}

resource "google_service_account" "sweep" {
  project      = var.project_id
  account_id   = "${var.prefix}-sweep"
  display_name = "${var.prefix}: sweepJobs function"
}

# The identity Cloud Tasks and Cloud Scheduler put in the OIDC token of each call; it may invoke
# the task and scheduler functions and nothing else.
resource "google_service_account" "schedule" {
  project      = var.project_id
  account_id   = "${var.prefix}-schedule"
  display_name = "${var.prefix}: runSchedules function"
}

resource "google_service_account" "webhook" {
  project      = var.project_id
  account_id   = "${var.prefix}-webhook"
  display_name = "${var.prefix}: deliverWebhooks function"
}

resource "google_service_account" "tasks_invoker" {
  project      = var.project_id
  account_id   = "${var.prefix}-invoker"
  display_name = "${var.prefix}: Cloud Tasks and Cloud Scheduler invoker"
}

# Builds the functions' containers (instead of the default compute service account).
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.prefix}-build"
  display_name = "${var.prefix}: function builds"
}

locals {
  runtime_service_accounts = {
    api      = google_service_account.api.member
    check    = google_service_account.check.member
    copy     = google_service_account.copy.member
    sweep    = google_service_account.sweep.member
    schedule = google_service_account.schedule.member
    webhook  = google_service_account.webhook.member
  }

  # Which function enqueues into which queue.
  enqueuers = {
    "api-check" = { queue = google_cloud_tasks_queue.check.name, member = google_service_account.api.member }
    # DELETE /v1/me enqueues the erasure's work on the copy queue (copyArchives runs it).
    "api-copy"    = { queue = google_cloud_tasks_queue.copy.name, member = google_service_account.api.member }
    "check-check" = { queue = google_cloud_tasks_queue.check.name, member = google_service_account.check.member }
    "check-copy"  = { queue = google_cloud_tasks_queue.copy.name, member = google_service_account.check.member }
    "copy-check"  = { queue = google_cloud_tasks_queue.check.name, member = google_service_account.copy.member }
    "copy-copy"   = { queue = google_cloud_tasks_queue.copy.name, member = google_service_account.copy.member }
    "sweep-check" = { queue = google_cloud_tasks_queue.check.name, member = google_service_account.sweep.member }
    "sweep-copy"  = { queue = google_cloud_tasks_queue.copy.name, member = google_service_account.sweep.member }
    # runSchedules fans out scheduled runs and enqueues each run's initiate steps, both on the check queue.
    "schedule-check" = { queue = google_cloud_tasks_queue.check.name, member = google_service_account.schedule.member }
    # Every function that tells of a change hands its events to the webhook queue (pipeline/event-relay.ts).
    "api-webhooks"      = { queue = google_cloud_tasks_queue.webhooks.name, member = google_service_account.api.member }
    "check-webhooks"    = { queue = google_cloud_tasks_queue.webhooks.name, member = google_service_account.check.member }
    "copy-webhooks"     = { queue = google_cloud_tasks_queue.webhooks.name, member = google_service_account.copy.member }
    "sweep-webhooks"    = { queue = google_cloud_tasks_queue.webhooks.name, member = google_service_account.sweep.member }
    "schedule-webhooks" = { queue = google_cloud_tasks_queue.webhooks.name, member = google_service_account.schedule.member }
  }

  # Functions that end jobs or change schedules, and so publish their events (infra/pubsub.tf).
  event_publishers = {
    api      = google_service_account.api.member
    check    = google_service_account.check.member
    copy     = google_service_account.copy.member
    sweep    = google_service_account.sweep.member
    schedule = google_service_account.schedule.member
  }

  # The webhook endpoints' secrets: only the deliverer reads them, each on its own secret.
  webhook_secrets = { for e in var.webhook_endpoints : e.id => {
    project = regex("^projects/([^/]+)/secrets/", e.secret)[0]
    secret  = regex("^projects/[^/]+/secrets/([^/]+)/versions/", e.secret)[0]
  } }

  # Functions that read or write users' OAuth tokens (the sweeper only re-enqueues).
  token_users = {
    api   = google_service_account.api.member
    check = google_service_account.check.member
    copy  = google_service_account.copy.member
  }
}

# Firestore has no narrower IAM scope than the project.
resource "google_project_iam_member" "firestore_user" {
  for_each = local.runtime_service_accounts

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value
}

# Every function parses the same configuration, which requires OAUTH_CLIENT_SECRET and reads
# TOKEN_ENCRYPTION_KEY, so every function mounts both secrets.
resource "google_secret_manager_secret_iam_member" "oauth_client_secret" {
  for_each = local.runtime_service_accounts

  project   = var.project_id
  secret_id = data.google_secret_manager_secret.oauth_client_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}

resource "google_secret_manager_secret_iam_member" "token_encryption_key" {
  for_each = local.runtime_service_accounts

  project   = var.project_id
  secret_id = google_secret_manager_secret.token_encryption_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value
}

resource "google_secret_manager_secret_iam_member" "webhook_secret" {
  for_each = local.webhook_secrets

  project   = each.value.project
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.webhook.member
}

resource "google_kms_crypto_key_iam_member" "token_key" {
  for_each = local.token_users

  crypto_key_id = google_kms_crypto_key.token.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.enqueuers

  project  = var.project_id
  location = var.region
  name     = each.value.queue
  role     = "roles/cloudtasks.enqueuer"
  member   = each.value.member
}

# Creating a task with an OIDC token for the invoker account requires actAs on that account.
resource "google_service_account_iam_member" "act_as_tasks_invoker" {
  for_each = local.runtime_service_accounts

  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

# Download links are V4 signed URLs: with no key of its own, the api signs through IAM signBlob as
# itself, which needs Token Creator on its own account (and on no other).
resource "google_service_account_iam_member" "api_signs_as_itself" {
  service_account_id = google_service_account.api.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.api.member
}

# The api deletes a user's archives; the copier writes and verifies them.
resource "google_storage_bucket_iam_member" "archive_api" {
  bucket = google_storage_bucket.archives.name
  role   = "roles/storage.objectUser"
  member = google_service_account.api.member
}

resource "google_storage_bucket_iam_member" "archive_copy" {
  bucket = google_storage_bucket.archives.name
  role   = "roles/storage.objectUser"
  member = google_service_account.copy.member
}

# Function builds: read the source, write build logs and the built image.
resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

# Invokers. The api is public (it verifies ID tokens itself); the task and scheduler functions
# admit only the invoker account.
resource "google_cloud_run_service_iam_member" "api_public" {
  count = var.api_public ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.api.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "check_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.check_archive_job.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}

resource "google_cloud_run_service_iam_member" "copy_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.copy_archives.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}

resource "google_cloud_run_service_iam_member" "sweep_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.sweep_jobs.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}

resource "google_cloud_run_service_iam_member" "schedule_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.run_schedules.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}

resource "google_cloud_run_service_iam_member" "webhook_invoker" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.deliver_webhooks.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks_invoker.member
}
