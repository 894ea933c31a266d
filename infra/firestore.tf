resource "google_firestore_database" "default" {
  project     = var.project_id
  name        = "(default)"
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  # Users' export records live here: destroying the stack must not silently delete them.
  delete_protection_state = var.firestore_deletion_policy == "DELETE" ? "DELETE_PROTECTION_DISABLED" : "DELETE_PROTECTION_ENABLED"
  deletion_policy         = var.firestore_deletion_policy

  depends_on = [google_project_service.enabled]
}

# exports: where userId == X order by createdAt desc, id desc (a user's export list, one page at a
# time; the id orders exports created in the same millisecond).
resource "google_firestore_index" "exports_by_user_page" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "exports"

  fields {
    field_path = "userId"
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdAt"
    order      = "DESCENDING"
  }
  fields {
    field_path = "id"
    order      = "DESCENDING"
  }
}

# jobs: the sweeper's query (nextCheckAt <= now order by nextCheckAt) is served by the single-field
# index; terminal jobs carry no nextCheckAt, so it reads only live jobs.

# schedules: where state == ACTIVE and nextRunAt <= now order by nextRunAt (the scheduler's tick).
resource "google_firestore_index" "schedules_due" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "schedules"

  fields {
    field_path = "state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "nextRunAt"
    order      = "ASCENDING"
  }
}

# schedules: where userId == X order by createdAt desc, id desc (a user's schedules, newest first).
resource "google_firestore_index" "schedules_by_user" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "schedules"

  fields {
    field_path = "userId"
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdAt"
    order      = "DESCENDING"
  }
  fields {
    field_path = "id"
    order      = "DESCENDING"
  }
}

# exports: where scheduleId == X order by createdAt desc (a schedule's runs).
resource "google_firestore_index" "exports_by_schedule" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "exports"

  fields {
    field_path = "scheduleId"
    order      = "ASCENDING"
  }
  fields {
    field_path = "createdAt"
    order      = "DESCENDING"
  }
}

# Started consents (POST /v1/authorizations:start) expire by themselves too; a day after their
# state expired, so a replay meanwhile is told "already used" rather than "unknown".
resource "google_firestore_field" "consent_state_ttl" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "consentStates"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# idempotency records expire by themselves; an empty index_config turns off single-field indexing
# of the timestamp, which only costs writes (TTL does not need an index).
resource "google_firestore_field" "idempotency_ttl" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "idempotency"
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# Retention (RECORD_RETENTION_DAYS): an ended export and its jobs carry expireAt, their end plus the
# record retention; a running one has none. The audit trail (AUDIT_RETENTION_DAYS) expires the
# same way, record retention + audit retention after each entry's time.
resource "google_firestore_field" "record_ttl" {
  for_each = toset(["exports", "jobs", "auditPending", "auditEntries", "auditHeads"])

  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = each.value
  field      = "expireAt"

  ttl_config {}
  index_config {}
}

# auditPending: where userKey == X order by at (a user's facts to chain, oldest first).
resource "google_firestore_index" "audit_pending_by_user" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "auditPending"

  fields {
    field_path = "userKey"
    order      = "ASCENDING"
  }
  fields {
    field_path = "at"
    order      = "ASCENDING"
  }
}

# auditEntries: where userKey == X order by seq desc (GET /v1/audit, newest first, one page at a time).
resource "google_firestore_index" "audit_entries_by_user" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "auditEntries"

  fields {
    field_path = "userKey"
    order      = "ASCENDING"
  }
  fields {
    field_path = "seq"
    order      = "DESCENDING"
  }
}
