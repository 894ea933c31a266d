# The reference web app (web/): static files in a bucket of its own, read by anyone (they hold no
# secret: config.json names the API and the Firebase project, as any web page would). Served at
# https://<bucket>.storage.googleapis.com/index.html, an origin only this bucket has, so the API's
# CORS list names it alone. scripts/deploy-web.sh builds and uploads the files and config.json.
resource "google_storage_bucket" "web" {
  count    = var.web_app_hosting ? 1 : 0
  project  = var.project_id
  name     = local.names.web_bucket
  location = upper(var.region)
  labels   = local.labels

  uniform_bucket_level_access = true
  # Public on purpose: allUsers may read objects (below), nobody may list or write.
  public_access_prevention = "inherited"
  force_destroy            = true

  website {
    main_page_suffix = "index.html"
    not_found_page   = "index.html"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_iam_member" "web_public_read" {
  count  = var.web_app_hosting ? 1 : 0
  bucket = google_storage_bucket.web[0].name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}
