# Apps are told on Pub/Sub when jobs and exports finish (README, "Events"): one topic, written to
# only by the functions that end jobs (through the outbox), a dead-letter topic, and an example pull
# subscription an app can start from (or replace with its own: a push subscription, a filter on
# the `type`, `state` or `userIdHash` attributes).

resource "google_pubsub_topic" "events" {
  project = var.project_id
  name    = local.names.events_topic
  labels  = local.labels
  # Subscribers that were down catch up on what arrived meanwhile.
  message_retention_duration = "604800s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "events_dead_letter" {
  project = var.project_id
  name    = "${local.names.events_topic}-dead-letter"
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "events_example" {
  count = var.events_example_subscription ? 1 : 0

  project = var.project_id
  name    = "${local.names.events_topic}-example"
  topic   = google_pubsub_topic.events.id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  # Events carry stable ids (`ce-id`): a subscriber drops the duplicates that at-least-once brings.
  enable_message_ordering = false
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter.id
    max_delivery_attempts = 10
  }
}

# The functions that can end a job or change a schedule publish: the api (cancel, reset), check
# (failures), copy (success, failures), the sweeper (what the outbox still holds) and runSchedules
# (a run started, a schedule ended). The webhook deliverer never does.
resource "google_pubsub_topic_iam_member" "events_publishers" {
  for_each = local.event_publishers

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

# Dead-lettering is done by the Pub/Sub service agent: it publishes to the dead-letter topic and
# acknowledges on the example subscription.
data "google_project" "this" {
  project_id = var.project_id
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.events_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count = var.events_example_subscription ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.events_example[0].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}
