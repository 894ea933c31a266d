# Cloud Tasks queues. The code names each task after (jobId, step, seq), so a duplicate enqueue is
# refused by the queue; the retry settings here are the safety net for crashed deliveries, the
# code's own backoff decides the ordinary polling delay.
resource "google_cloud_tasks_queue" "check" {
  project  = var.project_id
  name     = local.names.check_queue
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.check_queue.max_dispatches_per_second
    max_concurrent_dispatches = var.check_queue.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = var.check_queue.max_attempts
    min_backoff   = "${var.check_queue.min_backoff_seconds}s"
    max_backoff   = "${var.check_queue.max_backoff_seconds}s"
    max_doublings = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_tasks_queue" "copy" {
  project  = var.project_id
  name     = local.names.copy_queue
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.copy_queue.max_dispatches_per_second
    max_concurrent_dispatches = var.copy_queue.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = var.copy_queue.max_attempts
    min_backoff   = "${var.copy_queue.min_backoff_seconds}s"
    max_backoff   = "${var.copy_queue.max_backoff_seconds}s"
    max_doublings = 4
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.enabled]
}

# Webhook deliveries: one task per (event, endpoint), named after both. The queue's backoff spaces
# the attempts; the deliverer gives up and records on attempt max_attempts (WEBHOOK_MAX_ATTEMPTS is
# the same number), so no delivery ends unrecorded by the queue's own bound.
resource "google_cloud_tasks_queue" "webhooks" {
  project  = var.project_id
  name     = local.names.webhook_queue
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.webhook_queue.max_dispatches_per_second
    max_concurrent_dispatches = var.webhook_queue.max_concurrent_dispatches
  }

  retry_config {
    max_attempts  = var.webhook_queue.max_attempts
    min_backoff   = "${var.webhook_queue.min_backoff_seconds}s"
    max_backoff   = "${var.webhook_queue.max_backoff_seconds}s"
    max_doublings = 8
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.enabled]
}
