// The entry point the Functions Framework loads (package.json "main"). A .cjs file tells it the
// module is CommonJS; for a .js entry it first imports read-package-up to look for "type" in
// package.json, which costs a cold start about 20 ms (measured by `npm run bench`).
module.exports = require('./lib/index.js');
