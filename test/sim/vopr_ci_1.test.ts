// Goal: every default seed of the CI seed set (half 1 of them) passes safety and liveness, and
// the swarm gives a good share of those seeds storage faults of each kind (see vopr_seeds.ts).

import { testDefaultHalf } from "./vopr_seeds.js";

testDefaultHalf(1);
