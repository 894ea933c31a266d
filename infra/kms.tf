# Key ring and key for the envelope encryption of users' OAuth tokens. Cloud KMS never deletes key
# rings or keys: `terraform destroy` only destroys the key versions (after a 24 h delay by default)
# and forgets the ring; a later apply with the same prefix must import them.
resource "google_kms_key_ring" "tokens" {
  project  = var.project_id
  name     = local.names.key_ring
  location = var.region

  depends_on = [google_project_service.enabled]
}

resource "google_kms_crypto_key" "token" {
  name            = local.names.token_key
  key_ring        = google_kms_key_ring.tokens.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "${var.token_key_rotation_days * 86400}s"
  labels          = local.labels

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }
}

# Optional CMEK on the archive bucket: Cloud Storage's service agent encrypts with the given key.
data "google_storage_project_service_account" "storage_agent" {
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "storage_agent_archive_cmek" {
  count = var.archive_kms_key_name == null ? 0 : 1

  crypto_key_id = var.archive_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.storage_agent.email_address}"
}
