// The cold-start baseline of `npm run bench`: the Functions Framework and nothing else.
import * as ff from '@google-cloud/functions-framework';

ff.http('hello', (_req, res) => {
  res.send('hello');
});
