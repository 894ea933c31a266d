// A cold-start baseline of `npm run bench`: the Functions Framework plus the official Firestore
// client (@google-cloud/firestore), created as functions/src/adapters/firestore-client.ts creates
// it, and one query. Every function pays this much; the benchmark judges what our code adds.
import * as ff from '@google-cloud/functions-framework';
import { Firestore } from '@google-cloud/firestore';
import process from 'node:process';

let db;
ff.http('helloFirestore', async (_req, res) => {
  db ??= new Firestore({ projectId: process.env.GOOGLE_CLOUD_PROJECT, ignoreUndefinedProperties: true });
  const snap = await db.collection('exports').where('userId', '==', 'nobody').limit(1).get();
  res.send(`hello ${snap.size}`);
});
