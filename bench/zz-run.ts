import { runColdStartBench } from './zz-prof';
void runColdStartBench({ repeats: 1, log: (l) => console.log(l) }).then(() => process.exit(0));
