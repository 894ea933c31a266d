# The bucket the users' archives are copied into.
resource "google_storage_bucket" "archives" {
  project  = var.project_id
  name     = local.names.archive_bucket
  location = coalesce(var.archive_bucket_location, upper(var.region))
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  soft_delete_policy {
    retention_duration_seconds = var.archive_soft_delete_days * 86400
  }

  # Retention of the archives (ARCHIVE_RETENTION_DAYS): the bucket holds nothing but users'
  # archives (and their parts while copied), all under `{user}/`, so the rule covers every object.
  lifecycle_rule {
    condition {
      age = var.archive_delete_after_days
    }
    action {
      type = "Delete"
    }
  }

  # Interrupted resumable uploads (a copy that died mid-way) would otherwise be kept and billed.
  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  dynamic "retention_policy" {
    for_each = var.archive_retention_days > 0 ? [var.archive_retention_days] : []
    content {
      retention_period = retention_policy.value * 86400
      is_locked        = var.archive_retention_policy_locked
    }
  }

  dynamic "encryption" {
    for_each = var.archive_kms_key_name == null ? [] : [var.archive_kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  # The storage service agent must be able to use the CMEK key before the bucket can use it.
  depends_on = [google_kms_crypto_key_iam_member.storage_agent_archive_cmek, google_project_service.enabled]
}

# The functions' deployable source. Objects are named by content hash, so a code change makes a
# new object name, which changes every function's build source and redeploys it.
resource "google_storage_bucket" "source" {
  project  = var.project_id
  name     = local.names.source_bucket
  location = upper(var.region)
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Compiled JavaScript (lib/), package.json and package-lock.json: the Cloud Build of the function
# installs the production dependencies with `npm ci`, so exactly the locked versions the tests ran
# on, and runs no build script (GOOGLE_NODE_RUN_SCRIPTS is empty).
data "archive_file" "functions_source" {
  type        = "zip"
  source_dir  = local.functions_source_dir
  output_path = "${path.root}/.build/${var.prefix}-functions-source.zip"
  excludes    = ["node_modules", "src", "tsconfig.build.json", ".gcloudignore"]
}

resource "google_storage_bucket_object" "functions_source" {
  bucket = google_storage_bucket.source.name
  name   = "functions/${data.archive_file.functions_source.output_md5}.zip"
  source = data.archive_file.functions_source.output_path

  lifecycle {
    precondition {
      condition     = fileexists("${local.functions_source_dir}/lib/index.js")
      error_message = "The functions are not built: run `npm ci && npm run build` at the repository root before terraform plan/apply."
    }
  }
}
