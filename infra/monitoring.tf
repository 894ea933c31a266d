locals {
  # Gen2 functions log as Cloud Run revisions named after the function.
  function_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.location=\"${var.region}\""

  # The job runner logs "job state changed" with the new `state` on every transition
  # (functions/src/pipeline/job-runner.ts). Only the FAILED end state counts: a job still
  # waiting for Google is not a failure.
  failed_job_filter = "jsonPayload.message=\"job state changed\" AND jsonPayload.state=\"FAILED\""
}

resource "google_logging_metric" "failed_exports" {
  project     = var.project_id
  name        = "${var.prefix}-failed-export-jobs"
  description = "Export jobs that ended FAILED (${var.prefix})."
  filter      = "${local.function_logs} AND resource.labels.service_name=~\"^${var.prefix}-\" AND ${local.failed_job_filter}"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "copy_errors" {
  project     = var.project_id
  name        = "${var.prefix}-copy-errors"
  description = "Errors logged by the copyArchives function (${var.prefix})."
  filter      = "${local.function_logs} AND resource.labels.service_name=\"${local.names.copy_function}\" AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "failed_exports" {
  project               = var.project_id
  display_name          = "${var.prefix}: export jobs failing"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "More than ${var.failed_exports_alert_threshold} failed export jobs in 10 minutes"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.failed_exports.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.failed_exports_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Export jobs of ${var.prefix} ended FAILED after their retries. Look for `${local.failed_job_filter}` in Cloud Logging; the job's `error.code` says why (consent used, revoked, not authorized, retries spent)."
  }
}

resource "google_monitoring_alert_policy" "copy_errors" {
  project               = var.project_id
  display_name          = "${var.prefix}: archive copy errors"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "More than ${var.copy_errors_alert_threshold} copy errors in 10 minutes"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.copy_errors.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.copy_errors_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The copyArchives function (${local.names.copy_function}) is logging errors: archives are not reaching the bucket ${local.names.archive_bucket}. Check the function's logs; expired signed URLs are refreshed automatically and are not errors."
  }
}
