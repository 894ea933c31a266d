output "api_url" {
  description = "Base URL of the public API (give it to the browser frontend)."
  value       = google_cloudfunctions2_function.api.url
}

output "archive_bucket" {
  description = "The bucket the users' archives are copied into."
  value       = google_storage_bucket.archives.name
}

output "function_urls" {
  description = "URL of every function (the check, copy and sweep functions admit only the invoker service account)."
  value       = local.function_urls
}

output "service_accounts" {
  description = "Email of each function's service account, of the Cloud Tasks / Cloud Scheduler invoker and of the build account."
  value = {
    api           = google_service_account.api.email
    check         = google_service_account.check.email
    copy          = google_service_account.copy.email
    sweep         = google_service_account.sweep.email
    tasks_invoker = google_service_account.tasks_invoker.email
    build         = google_service_account.build.email
  }
}

output "token_kms_key" {
  description = "Id of the Cloud KMS key for the envelope encryption of users' OAuth tokens (KMS_KEY_NAME)."
  value       = google_kms_crypto_key.token.id
}

output "queues" {
  description = "Full names of the Cloud Tasks queues."
  value = {
    check = google_cloud_tasks_queue.check.id
    copy  = google_cloud_tasks_queue.copy.id
  }
}

output "web_app_url" {
  description = "Where the reference web app is served (null when web_app_hosting is false); scripts/deploy-web.sh uploads it."
  value       = var.web_app_hosting ? "${local.web_origin}/index.html" : null
}

output "web_app_bucket" {
  description = "The bucket holding the web app's static files (null when web_app_hosting is false)."
  value       = var.web_app_hosting ? google_storage_bucket.web[0].name : null
}
