/**
 * GET /v1/authorizations: what the caller's stored Google grant allows, in the terms a web app
 * shows a person: which groups were asked for and which granted (partial consent), one-time or
 * time-based access, when it ends, a warning when the OAuth client is still in Testing mode
 * (Google then ends every grant after 7 days, whatever the person chose), and where time-based
 * access is renewed.
 */
import type { ExportStore } from '../domain/ports/export-store';
import type { Grant } from '../domain/model';
import { DAY_MS } from '../domain/durations';

/** Google's lifetime of every token of an OAuth client in "Testing" publishing status. */
export const TESTING_MODE_DAYS = 7;

export type AccessType = 'ONE_TIME' | 'TIME_BASED' | 'MIXED';

export interface AuthorizationWarning {
  code: 'TESTING_MODE_7_DAYS';
  message: string;
}

export interface AuthorizationStatus {
  /** NONE: the user has not connected Google (or withdrew access); every list is then empty. */
  state: Grant['state'] | 'NONE';
  /** What the consent asked for; absent on grants stored before the API kept it. */
  requestedResources?: string[];
  grantedResources: string[];
  /** Asked for, not granted: the person unticked them on Google's consent screen. */
  notGrantedResources: string[];
  accessType: AccessType;
  oneTimeResources: string[];
  timeBasedResources: string[];
  grantedAt?: string;
  /** When the grant ends (RFC 3339): Google's time-based expiry, or 7 days in Testing mode. */
  expiresAt?: string;
  testingMode: boolean;
  warnings: AuthorizationWarning[];
  /** Google's page where the person renews time-based access (needs the project number). */
  renewalUrl?: string;
  /** Time-based access ends within GRANT_EXPIRY_WARNING_DAYS: the app tells the person, with `renewalUrl`. */
  expiresSoon: boolean;
}

export interface AuthorizationStatusOptions {
  store: Pick<ExportStore, 'getGrant'>;
  /** The OAuth Web client id; its leading number is the Cloud project number the renewal link names. */
  clientId: string;
  /** The operator says the OAuth client is still in Testing mode. */
  testingMode: boolean;
  /** GRANT_EXPIRY_WARNING_DAYS: how long before its end time-based access `expiresSoon`. */
  expiryWarningDays?: number;
  now?: () => number;
}

/** Client ids of Google's OAuth clients start with the project number: `123456789012-abc.apps.googleusercontent.com`. */
export function projectNumberOf(clientId: string): string | undefined {
  return /^(\d{6,20})-/.exec(clientId)?.[1];
}

export function renewalUrlOf(clientId: string): string | undefined {
  const n = projectNumberOf(clientId);
  return n ? `https://myaccount.google.com/connections/link?project_number=${n}` : undefined;
}

export function authorizationStatus(grant: Grant, opts: Omit<AuthorizationStatusOptions, 'store'>): AuthorizationStatus {
  const granted = [...grant.resources].sort();
  const requested = grant.requestedResources ? [...grant.requestedResources].sort() : undefined;
  const timeBased = grant.timeBasedResources.length > 0;
  const accessType: AccessType = timeBased && grant.oneTimeResources.length > 0 ? 'MIXED' : timeBased ? 'TIME_BASED' : 'ONE_TIME';
  // Time-based access is 30 or 180 days: a grant Google ends within 7 days is a Testing-mode client's.
  const consentedAt = grant.consentedAt ?? grant.updatedAt;
  const shortLived = grant.expiresAt !== undefined && grant.expiresAt - consentedAt <= TESTING_MODE_DAYS * DAY_MS + 3_600_000;
  const testingMode = opts.testingMode || (timeBased && shortLived);
  const testingEnd = consentedAt + TESTING_MODE_DAYS * DAY_MS;
  const ends = [grant.expiresAt, testingMode ? testingEnd : undefined].filter((t): t is number => t !== undefined);
  const renewalUrl = timeBased ? renewalUrlOf(opts.clientId) : undefined;
  const end = ends.length > 0 ? Math.min(...ends) : undefined;
  const now = (opts.now ?? Date.now)();
  const expiresSoon = timeBased && grant.state === 'ACTIVE' && end !== undefined && opts.expiryWarningDays !== undefined && end > now && end - now <= opts.expiryWarningDays * DAY_MS;
  return {
    state: grant.state,
    ...(requested ? { requestedResources: requested } : {}),
    grantedResources: granted,
    notGrantedResources: requested ? requested.filter((r) => !granted.includes(r)) : [],
    accessType,
    oneTimeResources: [...grant.oneTimeResources].sort(),
    timeBasedResources: [...grant.timeBasedResources].sort(),
    grantedAt: new Date(consentedAt).toISOString(),
    ...(end !== undefined ? { expiresAt: new Date(end).toISOString() } : {}),
    expiresSoon,
    testingMode,
    warnings: testingMode
      ? [
          {
            code: 'TESTING_MODE_7_DAYS',
            message: `This app's Google OAuth client is in Testing mode: Google ends the access after ${TESTING_MODE_DAYS} days, whatever was chosen on the consent screen.`,
          },
        ]
      : [],
    ...(renewalUrl ? { renewalUrl } : {}),
  };
}

const NO_GRANT: AuthorizationStatus = {
  state: 'NONE',
  grantedResources: [],
  notGrantedResources: [],
  accessType: 'ONE_TIME',
  oneTimeResources: [],
  timeBasedResources: [],
  testingMode: false,
  warnings: [],
  expiresSoon: false,
};

export class AuthorizationStatusReader {
  constructor(private readonly opts: AuthorizationStatusOptions) {}

  async read(userId: string): Promise<AuthorizationStatus> {
    const grant = await this.opts.store.getGrant(userId);
    // Not an error: "nothing connected yet" is the first answer every new user gets.
    if (!grant) return { ...NO_GRANT, testingMode: this.opts.testingMode };
    return authorizationStatus(grant, this.opts);
  }
}
