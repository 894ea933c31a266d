# The OAuth client secret is created outside Terraform (infra/README.md, step 1) so that it never
# enters a plan or the state; Terraform only reads the secret's metadata and grants access.
data "google_secret_manager_secret" "oauth_client_secret" {
  project   = var.project_id
  secret_id = local.names.oauth_secret

  depends_on = [google_project_service.enabled]
}

# TOKEN_ENCRYPTION_KEY: 32 random bytes, base64, until the KMS envelope encryption lands.
resource "google_secret_manager_secret" "token_encryption_key" {
  project   = var.project_id
  secret_id = local.names.token_secret
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# An ephemeral value feeds a write-only argument: the key is generated at apply time, sent to
# Secret Manager once, and stored neither in the plan nor in the state. 32 alphanumeric characters
# are 32 bytes (about 190 bits of entropy).
ephemeral "random_password" "token_encryption_key" {
  length  = 32
  special = false
}

resource "google_secret_manager_secret_version" "token_encryption_key" {
  secret         = google_secret_manager_secret.token_encryption_key.id
  secret_data_wo = base64encode(ephemeral.random_password.token_encryption_key.result)
  # Never bump this: a new key cannot decrypt the refresh tokens already stored.
  secret_data_wo_version = 1
}
