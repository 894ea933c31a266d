// The cold-start baseline of `npm run bench`: the Functions Framework and nothing else. CommonJS
// with a .cjs entry, as the functions are (functions/index.cjs), so both load the same way.
const ff = require('@google-cloud/functions-framework');

ff.http('hello', (_req, res) => {
  res.send('hello');
});
