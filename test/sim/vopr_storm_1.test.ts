// Goal: every storm seed of the CI seed set (half 1 of them) passes safety and liveness under
// frequent crashes, torn writes and storage faults, and exercises every fault kind (see
// vopr_seeds.ts).

import { testStormHalf } from "./vopr_seeds.js";

testStormHalf(1);
