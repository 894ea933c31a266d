# The smallest deployment: copy this folder, fill in terraform.tfvars, then
#   terraform init -backend-config="bucket=<state bucket>" && terraform apply
# (see infra/README.md). Provider configuration lives here, in the root, not in the module.

terraform {
  required_version = ">= 1.11"

  # State in Cloud Storage; the bucket is given at init (-backend-config=bucket=...).
  backend "gcs" {
    prefix = "portability-pipeline"
  }

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.23, < 8.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "portability" {
  # After copying this folder out of the repository, point source at your checkout's infra/
  # folder or at a tagged release, e.g.
  # "git::https://github.com/OWNER/portability-pipeline.git//infra?ref=v0.1.0".
  source = "../.."

  project_id      = var.project_id
  region          = var.region
  prefix          = var.prefix
  oauth_client_id = var.oauth_client_id
  cors_origins    = var.cors_origins

  oauth_redirect_uris = var.oauth_redirect_uris

  # The built functions workspace (npm ci && npm run build at the repository root).
  functions_source_dir = var.functions_source_dir
}

variable "project_id" {
  type        = string
  description = "The Google Cloud project to deploy into."
}

variable "region" {
  type        = string
  description = "Region of the functions, queues and scheduler."
  default     = "europe-west1"
}

variable "prefix" {
  type        = string
  description = "Prefix of every resource name."
  default     = "portability"
}

variable "oauth_client_id" {
  type        = string
  description = "OAuth client id (Web application) with the Data Portability scopes."
}

variable "oauth_redirect_uris" {
  type        = list(string)
  description = "The frontend's OAuth callback URLs (as registered with the OAuth client)."
  default     = []
}

variable "cors_origins" {
  type        = list(string)
  description = "Origins of the browser frontend."
  default     = []
}

variable "functions_source_dir" {
  type        = string
  description = "Path of the built functions/ workspace."
  default     = "../../../functions"
}

output "api_url" {
  description = "Base URL of the public API."
  value       = module.portability.api_url
}

output "archive_bucket" {
  description = "The bucket that receives the archives."
  value       = module.portability.archive_bucket
}
