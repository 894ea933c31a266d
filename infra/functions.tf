# One google_cloudfunctions2_function per entry point (functions-framework target), each with its
# own service account. They share one source object and one environment (locals.tf).

resource "google_cloudfunctions2_function" "api" {
  project     = var.project_id
  location    = var.region
  name        = local.names.api_function
  description = "Public HTTPS API for browser frontends; verifies users' ID tokens itself."
  labels      = local.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = "api"
    service_account = google_service_account.build.id
    environment_variables = {
      # The source holds compiled lib/: no TypeScript build in the cloud.
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.api.email
    available_memory               = "256Mi"
    timeout_seconds                = 60
    max_instance_count             = var.function_max_instances.api
    min_instance_count             = var.api_min_instances
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.oauth_client_secret,
    google_secret_manager_secret_iam_member.token_encryption_key,
    google_secret_manager_secret_version.token_encryption_key,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

resource "google_cloudfunctions2_function" "check_archive_job" {
  project     = var.project_id
  location    = var.region
  name        = local.names.check_function
  description = "Checks a Google archive job's state; called by Cloud Tasks only (queue check)."
  labels      = local.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = "checkArchiveJob"
    service_account = google_service_account.build.id
    environment_variables = {
      # The source holds compiled lib/: no TypeScript build in the cloud.
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.check.email
    available_memory               = "256Mi"
    timeout_seconds                = 300
    max_instance_count             = var.function_max_instances.check
    min_instance_count             = 0
    ingress_settings               = var.worker_ingress
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.oauth_client_secret,
    google_secret_manager_secret_iam_member.token_encryption_key,
    google_secret_manager_secret_version.token_encryption_key,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

resource "google_cloudfunctions2_function" "copy_archives" {
  project     = var.project_id
  location    = var.region
  name        = local.names.copy_function
  description = "Streams finished archives into the archive bucket; called by Cloud Tasks only (queue copy)."
  labels      = local.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = "copyArchives"
    service_account = google_service_account.build.id
    environment_variables = {
      # The source holds compiled lib/: no TypeScript build in the cloud.
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.copy.email
    available_memory               = var.copy_function_memory
    timeout_seconds                = var.copy_function_timeout_seconds
    max_instance_count             = var.function_max_instances.copy
    min_instance_count             = 0
    ingress_settings               = var.worker_ingress
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.oauth_client_secret,
    google_secret_manager_secret_iam_member.token_encryption_key,
    google_secret_manager_secret_version.token_encryption_key,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

resource "google_cloudfunctions2_function" "sweep_jobs" {
  project     = var.project_id
  location    = var.region
  name        = local.names.sweep_function
  description = "Re-enqueues overdue jobs; called by Cloud Scheduler only."
  labels      = local.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = "sweepJobs"
    service_account = google_service_account.build.id
    environment_variables = {
      # The source holds compiled lib/: no TypeScript build in the cloud.
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.sweep.email
    available_memory               = "256Mi"
    timeout_seconds                = 300
    max_instance_count             = var.function_max_instances.sweep
    min_instance_count             = 0
    ingress_settings               = var.worker_ingress
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.oauth_client_secret,
    google_secret_manager_secret_iam_member.token_encryption_key,
    google_secret_manager_secret_version.token_encryption_key,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

resource "google_cloudfunctions2_function" "run_schedules" {
  project     = var.project_id
  location    = var.region
  name        = local.names.schedule_fn
  description = "Starts due export schedules: Cloud Scheduler's tick and one Cloud Task per run."
  labels      = local.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = "runSchedules"
    service_account = google_service_account.build.id
    environment_variables = {
      # The source holds compiled lib/: no TypeScript build in the cloud.
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.schedule.email
    available_memory               = "256Mi"
    timeout_seconds                = 300
    max_instance_count             = var.function_max_instances.schedule
    min_instance_count             = 0
    ingress_settings               = var.worker_ingress
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.oauth_client_secret,
    google_secret_manager_secret_iam_member.token_encryption_key,
    google_secret_manager_secret_version.token_encryption_key,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

resource "google_cloudfunctions2_function" "deliver_webhooks" {
  project     = var.project_id
  location    = var.region
  name        = local.names.webhook_fn
  description = "Delivers one event to one webhook endpoint, signed; called by Cloud Tasks only (queue webhooks)."
  labels      = local.labels

  build_config {
    runtime         = "nodejs22"
    entry_point     = "deliverWebhooks"
    service_account = google_service_account.build.id
    environment_variables = {
      # The source holds compiled lib/: no TypeScript build in the cloud.
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.webhook.email
    available_memory               = "256Mi"
    timeout_seconds                = 120
    max_instance_count             = var.function_max_instances.webhook
    min_instance_count             = 0
    ingress_settings               = var.worker_ingress
    all_traffic_on_latest_revision = true
    environment_variables          = local.function_environment

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.oauth_client_secret,
    google_secret_manager_secret_iam_member.token_encryption_key,
    google_secret_manager_secret_version.token_encryption_key,
    google_secret_manager_secret_iam_member.webhook_secret,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}
