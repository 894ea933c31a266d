/** The smallest environment parseConfig accepts (production defaults for the rest). */
export const minimalEnv = {
  GOOGLE_CLOUD_PROJECT: 'demo-config',
  OAUTH_CLIENT_ID: 'id',
  OAUTH_CLIENT_SECRET: 'secret',
  ARCHIVE_BUCKET: 'my-archives',
  TASKS_SERVICE_ACCOUNT: 'tasks@demo-config.iam.gserviceaccount.com',
  CHECK_FUNCTION_URL: 'https://europe-west1-demo-config.cloudfunctions.net/checkArchiveJob',
  COPY_FUNCTION_URL: 'https://europe-west1-demo-config.cloudfunctions.net/copyArchives',
  SWEEP_FUNCTION_URL: 'https://europe-west1-demo-config.cloudfunctions.net/sweepJobs',
  SCHEDULE_FUNCTION_URL: 'https://europe-west1-demo-config.cloudfunctions.net/runSchedules',
};
