/** The seam to Google's Data Portability API (adapters/portability-api-client.ts, and the retrying wrapper). */

export type ArchiveState = 'STATE_UNSPECIFIED' | 'IN_PROGRESS' | 'COMPLETE' | 'FAILED' | 'CANCELLED';
export type AccessType = 'ACCESS_TYPE_UNSPECIFIED' | 'ACCESS_TYPE_ONE_TIME' | 'ACCESS_TYPE_TIME_BASED';

export interface InitiateRequest {
  resources: string[];
  startTime?: string;
  endTime?: string;
}

export interface PortabilityArchiveState {
  /** `archiveJobs/{id}/portabilityArchiveState` */
  name: string;
  state: ArchiveState;
  /** Signed URLs: credentials. Never log or store them. */
  urls: string[];
  startTime?: string;
  exportTime?: string;
}

export interface AccessTypeResult {
  oneTimeResources: string[];
  timeBasedResources: string[];
}

/** Every call takes the user's OAuth access token and a `quotaUser` (<= 40 chars, a hash of the user). */
export interface PortabilityApi {
  initiate(accessToken: string, request: InitiateRequest, quotaUser: string): Promise<{ archiveJobId: string; accessType: AccessType }>;
  getState(accessToken: string, archiveJobId: string, quotaUser: string): Promise<PortabilityArchiveState>;
  /** Returns the NEW archive job id. */
  retry(accessToken: string, archiveJobId: string, quotaUser: string): Promise<{ archiveJobId: string }>;
  cancel(accessToken: string, archiveJobId: string, quotaUser: string): Promise<void>;
  resetAuthorization(accessToken: string, quotaUser: string): Promise<void>;
  checkAccessType(accessToken: string, quotaUser: string): Promise<AccessTypeResult>;
}

