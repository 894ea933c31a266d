/** What a use case was refused with, for tests that check the error's every field. */
import { expect } from 'vitest';
import { RequestError } from '../../functions/src/domain/errors';

/** What `p` rejected with; undefined when it resolved. */
export async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/** The RequestError `p` rejected with; fails the test when it resolved or rejected with anything else. */
export async function refusalOf(p: Promise<unknown>): Promise<RequestError> {
  const err = await rejectionOf(p);
  expect(err).toBeInstanceOf(RequestError);
  return err as RequestError;
}
