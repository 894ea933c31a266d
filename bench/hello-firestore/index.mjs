// A second cold-start baseline of `npm run bench`: the Functions Framework plus what any function
// of ours must pay on its first request, the Firestore client and one query. The gap between this
// and the hello-world baseline is Firestore's; the gap above it is ours.
import * as ff from '@google-cloud/functions-framework';
import { Firestore } from '@google-cloud/firestore';
import process from 'node:process';

let db;
ff.http('helloFirestore', async (_req, res) => {
  db ??= new Firestore({ projectId: process.env.GOOGLE_CLOUD_PROJECT, preferRest: !process.env.FIRESTORE_EMULATOR_HOST });
  const snap = await db.collection('exports').where('userId', '==', 'nobody').limit(1).get();
  res.send(`hello ${snap.size}`);
});
