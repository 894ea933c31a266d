# The sweeper finds jobs whose next check is due but whose task was lost and enqueues them again.
resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = local.names.sweep_job
  description      = "Re-enqueue export jobs whose check is overdue (${var.prefix})."
  schedule         = var.sweep_schedule
  time_zone        = var.scheduler_time_zone
  attempt_deadline = "300s"

  # The next run comes in a few minutes: retrying a failed sweep only piles up work.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = local.function_urls.sweep

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = local.function_urls.sweep
    }
  }

  depends_on = [google_project_service.enabled, google_cloud_run_service_iam_member.sweep_invoker]
}

# Scheduled exports (time-based access): the tick reads due schedules through the
# schedules_due index and fans out one Cloud Task per schedule on the check queue.
resource "google_cloud_scheduler_job" "schedules" {
  project          = var.project_id
  region           = var.region
  name             = local.names.schedule_job
  description      = "Start the export schedules that are due (${var.prefix})."
  schedule         = var.schedules_schedule
  time_zone        = var.scheduler_time_zone
  attempt_deadline = "300s"

  # A due schedule stays due until its run is claimed: the next tick finds it again.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = local.function_urls.schedule

    oidc_token {
      service_account_email = google_service_account.tasks_invoker.email
      audience              = local.function_urls.schedule
    }
  }

  depends_on = [google_project_service.enabled, google_cloud_run_service_iam_member.schedule_invoker]
}
