// A cold-start baseline of `npm run bench`: the Functions Framework plus the official Firestore
// client (@google-cloud/firestore), created as functions/src/adapters/firestore-client.ts creates
// it, and one query. Every function pays this much; the benchmark judges what our code adds.
// CommonJS with a .cjs entry, as the functions are.
const ff = require('@google-cloud/functions-framework');
const { Firestore } = require('@google-cloud/firestore');

let db;
ff.http('helloFirestore', async (_req, res) => {
  db ??= new Firestore({ projectId: process.env.GOOGLE_CLOUD_PROJECT, ignoreUndefinedProperties: true });
  const snap = await db.collection('exports').where('userId', '==', 'nobody').limit(1).get();
  res.send(`hello ${snap.size}`);
});
