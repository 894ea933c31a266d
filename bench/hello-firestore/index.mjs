// A cold-start reference of `npm run bench`: the Functions Framework plus the official Firestore
// client (@google-cloud/firestore) and one query, which is what our functions paid before they
// moved to a small REST client (functions/src/adapters/firestore-rest.ts).
import * as ff from '@google-cloud/functions-framework';
import { Firestore } from '@google-cloud/firestore';
import process from 'node:process';

let db;
ff.http('helloFirestore', async (_req, res) => {
  db ??= new Firestore({ projectId: process.env.GOOGLE_CLOUD_PROJECT, preferRest: !process.env.FIRESTORE_EMULATOR_HOST });
  const snap = await db.collection('exports').where('userId', '==', 'nobody').limit(1).get();
  res.send(`hello ${snap.size}`);
});
