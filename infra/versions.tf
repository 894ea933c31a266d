terraform {
  # 1.11: write-only arguments (secret_data_wo) and ephemeral resources keep the token
  # encryption key out of the state file.
  required_version = ">= 1.11"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.23 added secret_data_wo on google_secret_manager_secret_version.
      version = ">= 6.23, < 8.0"
    }
    random = {
      source = "hashicorp/random"
      # 3.7 added the ephemeral random_password.
      version = ">= 3.7, < 4.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}
