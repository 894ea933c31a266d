variable "project_id" {
  type        = string
  description = "The Google Cloud project to deploy into."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits, hyphens), not a project number or name."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud Tasks queues, Cloud Scheduler job, KMS key ring and (by default) the archive bucket."
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1."
  }
}

variable "prefix" {
  type        = string
  description = "Prefix of every resource name (service accounts, functions, queues, secrets, metrics). Keep it short: service account ids are limited to 30 characters."
  default     = "portability"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 2-20 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold lowercase letters, digits, _ and - (at most 63 characters)."
  }
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs the system needs. Set to false when APIs are managed elsewhere (they are never disabled on destroy)."
  default     = true
}

variable "firestore_location" {
  type        = string
  description = "Location of the (default) Firestore database (native mode): a region such as europe-west1 or a multi-region such as eur3 or nam5. Cannot be changed later."
  default     = "eur3"

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location id such as eur3, nam5 or europe-west1."
  }
}

variable "firestore_deletion_policy" {
  type        = string
  description = "What `terraform destroy` does to the Firestore database: ABANDON leaves it (and its data) in place, DELETE deletes it."
  default     = "ABANDON"

  validation {
    condition     = contains(["ABANDON", "DELETE"], var.firestore_deletion_policy)
    error_message = "firestore_deletion_policy must be ABANDON or DELETE."
  }
}

variable "archive_bucket_name" {
  type        = string
  description = "Name of the bucket the users' archives are copied into. Default: <project_id>-<prefix>-archives."
  default     = null

  validation {
    condition     = var.archive_bucket_name == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.archive_bucket_name))
    error_message = "archive_bucket_name must be a valid Cloud Storage bucket name (3-63 characters)."
  }
}

variable "archive_bucket_location" {
  type        = string
  description = "Location of the archive bucket (a region or multi-region such as EU). Default: the region."
  default     = null

  validation {
    condition     = var.archive_bucket_location == null || can(regex("^[A-Za-z0-9-]+$", var.archive_bucket_location))
    error_message = "archive_bucket_location must be a Cloud Storage location such as EU or europe-west1."
  }
}

variable "archive_delete_after_days" {
  type        = number
  description = "Archive retention (ARCHIVE_RETENTION_DAYS): the lifecycle rule deletes archive objects this many days after they were written, and the API shows each archive's expiresAt from it (1 to 3650)."
  default     = 30

  validation {
    condition     = var.archive_delete_after_days >= 1 && var.archive_delete_after_days <= 3650 && floor(var.archive_delete_after_days) == var.archive_delete_after_days
    error_message = "archive_delete_after_days must be a whole number of days from 1 to 3650."
  }
}

variable "record_retention_days" {
  type        = number
  description = "Record retention (RECORD_RETENTION_DAYS): ended exports and jobs are deleted by Firestore TTL this many days after they ended (1 to 3650, at least archive_delete_after_days)."
  default     = 90

  validation {
    condition     = var.record_retention_days >= 1 && var.record_retention_days <= 3650 && floor(var.record_retention_days) == var.record_retention_days
    error_message = "record_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "audit_retention_days" {
  type        = number
  description = "Audit retention (AUDIT_RETENTION_DAYS): how many days the audit trail outlives the records it describes; an entry is kept record_retention_days + this from its time (1 to 3650)."
  default     = 365

  validation {
    condition     = var.audit_retention_days >= 1 && var.audit_retention_days <= 3650 && floor(var.audit_retention_days) == var.audit_retention_days
    error_message = "audit_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "grant_expiry_warning_days" {
  type        = number
  description = "GRANT_EXPIRY_WARNING_DAYS: days before time-based access ends that the person is told (an event, and expiresSoon in GET /v1/authorizations); 1 to 30."
  default     = 7

  validation {
    condition     = var.grant_expiry_warning_days >= 1 && var.grant_expiry_warning_days <= 30 && floor(var.grant_expiry_warning_days) == var.grant_expiry_warning_days
    error_message = "grant_expiry_warning_days must be a whole number of days from 1 to 30."
  }
}

variable "archive_retention_days" {
  type        = number
  description = "Bucket retention policy: objects cannot be deleted or replaced before they are this many days old (0 = no retention policy). Note that a retention policy also blocks users from deleting their exports early."
  default     = 0

  validation {
    condition     = var.archive_retention_days >= 0 && var.archive_retention_days <= 36500 && floor(var.archive_retention_days) == var.archive_retention_days
    error_message = "archive_retention_days must be a whole number of days between 0 and 36500."
  }
}

variable "archive_retention_policy_locked" {
  type        = bool
  description = "Lock the retention policy. IRREVERSIBLE: a locked policy can never be shortened or removed, and the bucket cannot be deleted until every object has aged out."
  default     = false
}

variable "archive_soft_delete_days" {
  type        = number
  description = "Soft delete: deleted archive objects stay restorable this many days (0 turns soft delete off, otherwise 7 to 90)."
  default     = 7

  validation {
    condition     = var.archive_soft_delete_days == 0 || (var.archive_soft_delete_days >= 7 && var.archive_soft_delete_days <= 90)
    error_message = "archive_soft_delete_days must be 0 or between 7 and 90."
  }
}

variable "archive_kms_key_name" {
  type        = string
  description = "Optional CMEK: the id of a Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K, in the bucket's location) that encrypts the archive bucket. Null uses Google-managed encryption."
  default     = null

  validation {
    condition     = var.archive_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.archive_kms_key_name))
    error_message = "archive_kms_key_name must be a full key id: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "force_destroy_buckets" {
  type        = bool
  description = "Let `terraform destroy` delete the buckets even when they still hold objects (users' archives). Leave false in production."
  default     = false
}

variable "functions_source_dir" {
  type        = string
  description = "The functions workspace, already built (`npm run build` writes lib/). Default: the functions/ folder beside infra/."
  default     = null
}

variable "oauth_client_id" {
  type        = string
  description = "The OAuth client id (Web application) that asks users for the Data Portability scopes."

  validation {
    condition     = can(regex("\\.apps\\.googleusercontent\\.com$", var.oauth_client_id))
    error_message = "oauth_client_id must be an OAuth client id ending in .apps.googleusercontent.com."
  }
}

variable "oauth_client_secret_id" {
  type        = string
  description = "Secret Manager secret (in this project) that holds the OAuth client secret. Create it before the first apply (see infra/README.md), so the secret never passes through Terraform. Default: <prefix>-oauth-client-secret."
  default     = null

  validation {
    condition     = var.oauth_client_secret_id == null || can(regex("^[A-Za-z0-9_-]{1,255}$", var.oauth_client_secret_id))
    error_message = "oauth_client_secret_id must be a secret id (letters, digits, _ and -)."
  }
}

variable "auth_issuer" {
  type        = string
  description = "Issuer of the ID tokens the API accepts from browser frontends. Default: Firebase Authentication of this project (https://securetoken.google.com/<project_id>)."
  default     = null

  validation {
    condition     = var.auth_issuer == null || can(regex("^https://", var.auth_issuer))
    error_message = "auth_issuer must be an https URL."
  }
}

variable "auth_audience" {
  type        = string
  description = "Audience of the ID tokens the API accepts. Default: the project id (Firebase Authentication)."
  default     = null

  validation {
    condition     = var.auth_audience == null || can(regex("^\\S+$", var.auth_audience))
    error_message = "auth_audience must not be empty or contain spaces."
  }
}

variable "auth_jwks_url" {
  type        = string
  description = "JWKS of the ID token issuer. The default is Firebase Authentication's; use https://www.googleapis.com/oauth2/v3/certs for Google-issued ID tokens."
  default     = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"

  validation {
    condition     = can(regex("^https://", var.auth_jwks_url))
    error_message = "auth_jwks_url must be an https URL."
  }
}

variable "oauth_redirect_uris" {
  type        = list(string)
  description = "The frontend's OAuth callback URLs, exactly as registered with the OAuth client: POST /v1/authorizations:start accepts only these as redirectUri (none: no consent can start)."
  default     = []

  validation {
    condition     = alltrue([for u in var.oauth_redirect_uris : can(regex("^(https://[^/,#\\s]+|http://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?)(/[^,#\\s]*)?$", u))])
    error_message = "Each redirect URI must be an https URL (http only for localhost) without a fragment or a comma."
  }
}

variable "oauth_client_testing_mode" {
  type        = bool
  description = "The OAuth client is still in Testing publishing status: GET /v1/authorizations warns that Google ends every grant after 7 days."
  default     = false
}

variable "web_app_hosting" {
  type        = bool
  description = "Host the reference web app (web/) as static files in a public Cloud Storage bucket; its origin is added to the API's CORS origins and its callback to the OAuth redirect URIs. scripts/deploy-web.sh uploads the files."
  default     = true
}

variable "cors_origins" {
  type        = list(string)
  description = "Browser origins allowed to call the API (CORS), e.g. [\"https://app.example.com\"]."
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_origins : can(regex("^(https://[^/,\\s]+|http://localhost(:[0-9]+)?)$", o))])
    error_message = "Each CORS origin must be https://host[:port] without a path (http:// only for localhost)."
  }
}

variable "archive_url_hosts" {
  type        = list(string)
  description = "Hosts the Data Portability API's signed archive URLs may point at; the copier refuses any other host."
  default     = ["storage.googleapis.com"]

  validation {
    condition     = length(var.archive_url_hosts) > 0 && alltrue([for h in var.archive_url_hosts : can(regex("^[a-z0-9.-]+$", h))])
    error_message = "archive_url_hosts must list at least one host name (no scheme, no path)."
  }
}

variable "log_level" {
  type        = string
  description = "Log level of every function."
  default     = "info"

  validation {
    condition     = contains(["trace", "debug", "info", "warn", "error", "fatal", "silent"], var.log_level)
    error_message = "log_level must be one of trace, debug, info, warn, error, fatal, silent."
  }
}

variable "poll_initial_seconds" {
  type        = number
  description = "First delay between two state checks of a Google archive job (the API asks for 5 to 60 minutes)."
  default     = 300

  validation {
    condition     = var.poll_initial_seconds >= 60 && var.poll_initial_seconds <= var.poll_max_seconds
    error_message = "poll_initial_seconds must be at least 60 and at most poll_max_seconds."
  }
}

variable "poll_max_seconds" {
  type        = number
  description = "Longest delay between two state checks (the back-off stops growing here)."
  default     = 3600

  validation {
    condition     = var.poll_max_seconds >= 60 && var.poll_max_seconds <= 86400
    error_message = "poll_max_seconds must be between 60 and 86400."
  }
}

variable "max_archive_retries" {
  type        = number
  description = "How many times a FAILED Google archive job is retried (the API allows 3)."
  default     = 3

  validation {
    condition     = contains([0, 1, 2, 3], var.max_archive_retries)
    error_message = "max_archive_retries must be 0, 1, 2 or 3."
  }
}

variable "archive_max_bytes" {
  type        = number
  description = "The largest archive copied into the bucket, in bytes; a bigger one fails its job (default 50 GiB)."
  default     = 53687091200

  validation {
    condition     = var.archive_max_bytes >= 1048576 && floor(var.archive_max_bytes) == var.archive_max_bytes
    error_message = "archive_max_bytes must be a whole number of bytes, at least 1 MiB."
  }
}

variable "archive_stall_seconds" {
  type        = number
  description = "A copy whose source sends no byte for this many seconds is aborted and retried."
  default     = 60

  validation {
    condition     = var.archive_stall_seconds >= 5 && var.archive_stall_seconds <= 600
    error_message = "archive_stall_seconds must be between 5 and 600."
  }
}

variable "max_exports_per_day" {
  type        = number
  description = "Abuse limit: exports one user may start in any 24 hours (answered 429 beyond it)."
  default     = 10

  validation {
    condition     = var.max_exports_per_day >= 1 && floor(var.max_exports_per_day) == var.max_exports_per_day
    error_message = "max_exports_per_day must be a positive whole number."
  }
}

variable "max_concurrent_exports" {
  type        = number
  description = "Abuse limit: exports one user may have running at once (answered 429 beyond it)."
  default     = 3

  validation {
    condition     = var.max_concurrent_exports >= 1 && floor(var.max_concurrent_exports) == var.max_concurrent_exports
    error_message = "max_concurrent_exports must be a positive whole number."
  }
}

variable "api_public" {
  type        = bool
  description = "Let anyone on the internet reach the API function (allUsers run.invoker). The API verifies ID tokens itself; set false behind a load balancer or when an organization policy forbids allUsers."
  default     = true
}

variable "worker_ingress" {
  type        = string
  description = "Ingress of the functions that Cloud Tasks and Cloud Scheduler call. ALLOW_INTERNAL_ONLY still admits Cloud Tasks and Cloud Scheduler of this project."
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY"], var.worker_ingress)
    error_message = "worker_ingress must be ALLOW_ALL or ALLOW_INTERNAL_ONLY."
  }
}

variable "function_max_instances" {
  type = object({
    api   = optional(number, 20)
    check = optional(number, 10)
    copy  = optional(number, 5)
    sweep = optional(number, 1)
    # One tick every few minutes plus one short task per due schedule.
    schedule = optional(number, 5)
    # One short POST per event and webhook endpoint.
    webhook = optional(number, 5)
  })
  description = "Maximum instances per function; copy is the one that moves bytes (and pays egress), sweep needs one."
  default     = {}

  validation {
    condition     = alltrue([for n in values(var.function_max_instances) : n >= 1 && n <= 1000])
    error_message = "Each max instance count must be between 1 and 1000."
  }
}

variable "api_min_instances" {
  type        = number
  description = "Instances of the API function kept warm, so a user's request does not wait for a cold start (most of which is the Firestore client loading). 0 scales to zero; each warm instance is billed while idle (about 2.70 USD a month, see infra/README.md)."
  default     = 0

  validation {
    condition     = var.api_min_instances >= 0 && floor(var.api_min_instances) == var.api_min_instances && var.api_min_instances <= var.function_max_instances.api
    error_message = "api_min_instances must be a whole number from 0 to function_max_instances.api."
  }
}

variable "copy_function_memory" {
  type        = string
  description = "Memory of the copyArchives function (it streams archives, so it needs no room for a whole archive)."
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.copy_function_memory))
    error_message = "copy_function_memory must look like 512Mi or 1Gi."
  }
}

variable "copy_function_timeout_seconds" {
  type        = number
  description = "Timeout of the copyArchives function. Cloud Tasks waits at most 30 minutes for an HTTP task, so a copy that runs longer is delivered again while it still runs: the copier must stay idempotent."
  default     = 3600

  validation {
    condition     = var.copy_function_timeout_seconds >= 60 && var.copy_function_timeout_seconds <= 3600
    error_message = "copy_function_timeout_seconds must be between 60 and 3600 (the limit for HTTP functions)."
  }
}

variable "check_queue" {
  type = object({
    max_dispatches_per_second = optional(number, 5)
    max_concurrent_dispatches = optional(number, 20)
    max_attempts              = optional(number, 100)
    min_backoff_seconds       = optional(number, 10)
    max_backoff_seconds       = optional(number, 600)
  })
  description = "Rate and retry settings of the queue of state-check tasks (fields: max_dispatches_per_second, max_concurrent_dispatches, max_attempts, min_backoff_seconds, max_backoff_seconds)."
  default     = {}

  validation {
    condition = (
      var.check_queue.max_dispatches_per_second > 0 && var.check_queue.max_dispatches_per_second <= 500 &&
      var.check_queue.max_concurrent_dispatches >= 1 && var.check_queue.max_concurrent_dispatches <= 5000 &&
      (var.check_queue.max_attempts == -1 || var.check_queue.max_attempts > var.task_retry_budget) &&
      var.check_queue.min_backoff_seconds >= 1 && var.check_queue.min_backoff_seconds <= var.check_queue.max_backoff_seconds
    )
    error_message = "check_queue: 0 < max_dispatches_per_second <= 500, 1 <= max_concurrent_dispatches <= 5000, max_attempts -1 (unlimited) or above task_retry_budget, 1 <= min_backoff_seconds <= max_backoff_seconds."
  }
}

variable "copy_queue" {
  type = object({
    max_dispatches_per_second = optional(number, 1)
    max_concurrent_dispatches = optional(number, 5)
    max_attempts              = optional(number, 100)
    min_backoff_seconds       = optional(number, 30)
    max_backoff_seconds       = optional(number, 1800)
  })
  description = "Rate and retry settings of the queue of archive-copy tasks; keep max_concurrent_dispatches at or below the copy function's max instances."
  default     = {}

  validation {
    condition = (
      var.copy_queue.max_dispatches_per_second > 0 && var.copy_queue.max_dispatches_per_second <= 500 &&
      var.copy_queue.max_concurrent_dispatches >= 1 && var.copy_queue.max_concurrent_dispatches <= 5000 &&
      (var.copy_queue.max_attempts == -1 || var.copy_queue.max_attempts > var.task_retry_budget) &&
      var.copy_queue.min_backoff_seconds >= 1 && var.copy_queue.min_backoff_seconds <= var.copy_queue.max_backoff_seconds
    )
    error_message = "copy_queue: 0 < max_dispatches_per_second <= 500, 1 <= max_concurrent_dispatches <= 5000, max_attempts -1 (unlimited) or above task_retry_budget, 1 <= min_backoff_seconds <= max_backoff_seconds."
  }
}

variable "task_retry_budget" {
  type        = number
  description = "Deliveries of one task after which the functions record a still-failing step as a terminal failure and answer 200. The queues' max_attempts must be higher, so the code, not the queue, decides when to give up."
  default     = 30

  validation {
    condition     = var.task_retry_budget >= 1 && floor(var.task_retry_budget) == var.task_retry_budget
    error_message = "task_retry_budget must be a whole number, 1 or more."
  }
}

variable "sweep_grace_seconds" {
  type        = number
  description = "How late (seconds) a job's next step may be before the sweeper enqueues it again. Larger than the longest normal delivery delay."
  default     = 600

  validation {
    condition     = var.sweep_grace_seconds >= 60 && floor(var.sweep_grace_seconds) == var.sweep_grace_seconds
    error_message = "sweep_grace_seconds must be a whole number of seconds, 60 or more."
  }
}

variable "sweep_schedule" {
  type        = string
  description = "Cron schedule of the sweeper that re-enqueues jobs whose task was lost."
  default     = "*/5 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.sweep_schedule))) == 5
    error_message = "sweep_schedule must be a five-field cron expression."
  }
}

variable "scheduler_time_zone" {
  type        = string
  description = "Time zone (tz database name) of the sweep schedule."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.scheduler_time_zone))
    error_message = "scheduler_time_zone must be a tz database name such as Etc/UTC or Europe/Paris."
  }
}

variable "token_key_rotation_days" {
  type        = number
  description = "Rotation period of the Cloud KMS key that wraps users' OAuth tokens (old versions stay usable for decryption)."
  default     = 90

  validation {
    condition     = var.token_key_rotation_days >= 1 && var.token_key_rotation_days <= 36500
    error_message = "token_key_rotation_days must be between 1 and 36500."
  }
}

variable "alert_notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) that receive the alerts. Empty: alerts show in the console only."
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "Each notification channel must be an id like projects/P/notificationChannels/N."
  }
}

variable "failed_exports_alert_threshold" {
  type        = number
  description = "Alert when more than this many export jobs fail within 10 minutes."
  default     = 0

  validation {
    condition     = var.failed_exports_alert_threshold >= 0
    error_message = "failed_exports_alert_threshold must be 0 or more."
  }
}

variable "copy_errors_alert_threshold" {
  type        = number
  description = "Alert when the copy function logs more than this many errors within 10 minutes."
  default     = 5

  validation {
    condition     = var.copy_errors_alert_threshold >= 0
    error_message = "copy_errors_alert_threshold must be 0 or more."
  }
}

variable "schedules_schedule" {
  type        = string
  description = "Cron schedule of the tick that finds due export schedules (time-based access) and fans them out as Cloud Tasks."
  default     = "*/5 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.schedules_schedule))) == 5
    error_message = "schedules_schedule must be a five-field cron expression."
  }
}

variable "events_example_subscription" {
  type        = bool
  description = "Create an example pull subscription (with a dead-letter topic) on the events topic; apps may use it or make their own."
  default     = true
}

variable "webhook_endpoints" {
  type = list(object({
    id     = string
    url    = string
    secret = string
  }))
  description = "Apps told by signed webhooks (Standard Webhooks): id (lowercase, digits, -), an https url on a public host, and secret, the Secret Manager secret version (projects/P/secrets/S/versions/N) holding whsec_<base64>. Only the deliverWebhooks function may read those secrets."
  default     = []

  validation {
    condition = alltrue([for e in var.webhook_endpoints : (
      can(regex("^[a-z0-9][a-z0-9-]{0,62}$", e.id)) &&
      can(regex("^https://[^/@]+(/.*)?$", e.url)) &&
      can(regex("^projects/[^/]+/secrets/[^/]+/versions/([0-9]+|latest)$", e.secret))
    )]) && length(distinct([for e in var.webhook_endpoints : e.id])) == length(var.webhook_endpoints)
    error_message = "webhook_endpoints: unique ids of lowercase letters, digits and -; https URLs without user info; secret as projects/P/secrets/S/versions/N (or latest)."
  }
}

variable "webhook_queue" {
  type = object({
    max_dispatches_per_second = optional(number, 10)
    max_concurrent_dispatches = optional(number, 20)
    max_attempts              = optional(number, 12)
    min_backoff_seconds       = optional(number, 10)
    max_backoff_seconds       = optional(number, 3600)
  })
  description = "Rate and retry settings of the webhook delivery queue; max_attempts is also WEBHOOK_MAX_ATTEMPTS, after which a delivery is given up and recorded (fields: max_dispatches_per_second, max_concurrent_dispatches, max_attempts, min_backoff_seconds, max_backoff_seconds)."
  default     = {}

  validation {
    condition = (
      var.webhook_queue.max_dispatches_per_second > 0 && var.webhook_queue.max_dispatches_per_second <= 500 &&
      var.webhook_queue.max_concurrent_dispatches >= 1 && var.webhook_queue.max_concurrent_dispatches <= 5000 &&
      var.webhook_queue.max_attempts >= 1 && var.webhook_queue.max_attempts <= 100 &&
      var.webhook_queue.min_backoff_seconds >= 1 && var.webhook_queue.min_backoff_seconds <= var.webhook_queue.max_backoff_seconds
    )
    error_message = "webhook_queue: 0 < max_dispatches_per_second <= 500, 1 <= max_concurrent_dispatches <= 5000, 1 <= max_attempts <= 100 (bounded: a delivery is given up), 1 <= min_backoff_seconds <= max_backoff_seconds."
  }
}

variable "webhook_timeout_seconds" {
  type        = number
  description = "How long one webhook delivery waits for the endpoint's answer (WEBHOOK_TIMEOUT_SECONDS)."
  default     = 10

  validation {
    condition     = var.webhook_timeout_seconds >= 1 && var.webhook_timeout_seconds <= 60 && floor(var.webhook_timeout_seconds) == var.webhook_timeout_seconds
    error_message = "webhook_timeout_seconds: a whole number of seconds from 1 to 60."
  }
}
